"""Does anything measured on the validation split tell which configurations also hold the
budget on the test split?

Every configuration of the ``eager`` space (all layers quantized; with ``--keep-float K``
also the static and QAT ones with the 1 to K most sensitive layers kept in float) is built,
scored on the validation and test splits, and compared with float on each. Among the
configurations within a budget on validation, each signal's AUC says how well it separates
those that also hold the budget on test from those that do not (0.5: no better than chance;
1: perfectly). The signals: flips (answers changed against float), the output SQNR against
float (``autoquant.measure.output_sqnr``), the mean KL divergence from float's class
probabilities, and the smallest true-class margin over the examples float gets right.

No timing is done, so it can run beside other work. Writes SPLIT_SIGNALS.md.

    .venv/bin/python experiments/split_signals.py cnn
    .venv/bin/python experiments/split_signals.py cnn_outliers --keep-float 3
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from tqdm import tqdm

from autoquant import apply
from autoquant.measure import count_flips, output_sqnr, predict, predicted_answers
from autoquant.study.history import space_configs
from autoquant.study.sensitivity import cached_sensitivity
from autoquant.tasks import digits_task, top1_accuracy
from autoquant.tracking.tracker import machine_info
from experiments.bench import FULL

BUDGETS = (1.0, 0.25)  # points, absolute
#: signal -> (key, sign): higher sign * value should mean "more likely to hold on test"
SIGNALS = {
    "flips": ("flips", -1),
    "output SQNR": ("sqnr", 1),
    "KL from float": ("kl", -1),
    "smallest true-class margin": ("margin", 1),
}


def signals(float_out: torch.Tensor, out: torch.Tensor, targets: torch.Tensor) -> dict:
    """Accuracy of float and of the candidate, and every signal, on one split (flips and SQNR
    as a search measures them)."""
    answers, float_answers = predicted_answers(out, targets), predicted_answers(float_out, targets)
    out, float_out = answers.scores, float_answers.scores
    log_p, log_q = float_out.log_softmax(1), out.log_softmax(1)
    right = float_answers.classes == targets
    true = out.gather(1, targets[:, None])[:, 0]
    others = out.scatter(1, targets[:, None], float("-inf")).max(1).values
    return {
        "float_accuracy": top1_accuracy(float_out, targets),
        "accuracy": top1_accuracy(out, targets),
        "flips": count_flips(answers, float_answers),
        "sqnr": output_sqnr(answers, float_answers),
        "kl": (log_p.exp() * (log_p - log_q)).sum(1).mean().item(),
        "margin": (true - others)[right].min().item(),
    }


def auc(scores: list[float], held: list[bool]) -> float | None:
    """P(a configuration that held scores above one that did not); ties count half."""
    pos = [s for s, h in zip(scores, held, strict=True) if h]
    neg = [s for s, h in zip(scores, held, strict=True) if not h]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _drop(split: dict) -> float:
    return 100 * (split["float_accuracy"] - split["accuracy"])


def measure(model_name: str, keep_float: int) -> list[dict]:
    task = digits_task(model_name)
    ranked = [r.name for r in cached_sensitivity(task)]
    configs = []
    for config in space_configs(FULL.search_space()):
        configs.append(config)
        if config.method in ("static_int8", "qat_int8"):
            configs += [
                dataclasses.replace(config, keep_float=tuple(ranked[:k]))
                for k in range(1, keep_float + 1)
            ]
    splits = {"validation": task.validation_data, "test": task.test_data}
    reference = {name: predict(task.model, data) for name, data in splits.items()}
    rows = []
    for config in tqdm(configs, desc=model_name, unit="config"):
        if config.method == "fp32":
            continue
        try:
            model = apply(
                task.model, config, task.calibration_data, task.train_data, loss_fn=task.loss_fn
            )
        except Exception:  # noqa: BLE001 - a configuration this model cannot take is skipped
            continue
        row = {"label": config.label(), "kept": len(config.keep_float)}
        for name, data in splits.items():
            out, targets = predict(model, data)
            row[name] = signals(reference[name][0], out, targets)
        rows.append(row)
    return rows


def report(model_name: str, rows: list[dict]) -> list[str]:
    kinds = [("every layer int8", lambda r: r["kept"] == 0)]
    if any(r["kept"] for r in rows):
        kinds.append(("layers kept in float", lambda r: r["kept"] > 0))
    lines = [
        f"## {model_name}",
        "",
        "| budget | configurations | within budget on validation | also on test | "
        + " | ".join(f"AUC {s}" for s in SIGNALS)
        + " | zero validation flips: held / of |",
        "|---|---|---|---|" + "---|" * len(SIGNALS) + "---|",
    ]
    for budget in BUDGETS:
        for kind, chosen in kinds:
            within = [r for r in rows if chosen(r) and _drop(r["validation"]) <= budget + 1e-9]
            held = [_drop(r["test"]) <= budget + 1e-9 for r in within]
            cells = []
            for key, sign in SIGNALS.values():
                value = auc([sign * r["validation"][key] for r in within], held)
                cells.append("-" if value is None else f"{value:.2f}")
            zero = [h for r, h in zip(within, held, strict=True) if r["validation"]["flips"] == 0]
            lines.append(
                f"| {budget:g}pt | {kind} | {len(within)} | {sum(held)} | "
                + " | ".join(cells)
                + f" | {sum(zero)} / {len(zero)} |"
            )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument(
        "--keep-float",
        type=int,
        default=0,
        help="also keep the 1 to K most sensitive layers in float (static and QAT)",
    )
    parser.add_argument("--out", default=str(Path(__file__).with_name("SPLIT_SIGNALS.md")))
    args = parser.parse_args()
    started = time.time()
    sections = []
    for model_name in args.models:
        sections += report(model_name, measure(model_name, args.keep_float))
    machine = machine_info()
    header = [
        "# Which validation signals predict holding the budget on the test split",
        "",
        f"Produced by `python experiments/split_signals.py {' '.join(args.models)}"
        + (f" --keep-float {args.keep_float}" if args.keep_float else "")
        + f"` on {time.strftime('%Y-%m-%d')} in {(time.time() - started) / 60:.0f} min; "
        f"{machine['machine.cpu']} ({machine['machine.cpu_capability']} kernels), "
        f"torch {torch.__version__}.",
        "",
        "The digits splits have 270 validation and 270 test examples (one example: 0.37 "
        "points). Among the configurations within each budget on validation, an AUC is the "
        "chance that one that also held the budget on test scores better on that validation "
        "signal than one that did not (0.5: no better than chance).",
        "",
    ]
    Path(args.out).write_text("\n".join(header + sections))
    print("\n".join(header + sections))


if __name__ == "__main__":
    main()
