"""torch.ao against torchao on every zoo model and scenario: one command, one table.

For each model and scenario it measures, interleaved in one ``measure_latency`` call: float
eager, float compiled (Inductor, freezing on), the best torch.ao int8 recipe for the model
(static_int8 x86 per-channel for conv models, dynamic_int8 for Linear/LSTM ones) and each
torchao method. Speedups are against eager float, and for compiled models also against
compiled float; drop on the digits validation data, size ratio, compile seconds, errors.

    nice -n 19 python experiments/torchao_compare.py [--models mlp cnn] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
import traceback
from pathlib import Path

import torch

import autoquant
from autoquant import QuantConfig, apply
from autoquant.engine.compile import compile_module
from autoquant.measure import SCENARIOS, example_batch, measure_latency, score, serialized_size
from autoquant.tasks import digits_task
from autoquant.tracking.tracker import machine_info

MODELS = ["mlp", "cnn", "cnn_outliers", "lstm", "transformer", "resnet18", "mobilenet_v2"]
CONV_MODELS = {"cnn", "cnn_outliers", "resnet18", "mobilenet_v2"}

TORCHAO = [
    QuantConfig("pt2e_static_int8", "x86"),
    QuantConfig("pt2e_static_int8", "qnnpack", reduce_range=False),
    QuantConfig("torchao_dynamic_int8"),
    QuantConfig("torchao_weight_only_int8"),
    QuantConfig("torchao_int4_weight_only"),
]


def torch_ao_best(model: str) -> QuantConfig:
    if model in CONV_MODELS:
        return QuantConfig("static_int8", "x86", weight_observer="per_channel_minmax")
    return QuantConfig("dynamic_int8", "x86")


def short(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:160] if lines else ''}"


def compare_model(name: str, scenarios: list[str], log) -> list[dict]:
    task = digits_task(name, log=log)
    float_acc = score(task.model, task.validation_data, task.metric)
    float_size = serialized_size(task.model)
    configs = [("torch.ao", torch_ao_best(name))] + [("torchao", c) for c in TORCHAO]
    built = {}
    rows = []
    for engine, config in configs:
        label = config.label()
        try:
            started = time.perf_counter()
            built[label] = (engine, apply(task.model, config, task.calibration_data))
            log(f"  {name} {label}: quantized in {time.perf_counter() - started:.1f}s")
        except Exception as err:  # noqa: BLE001 - the table shows every failure
            rows += [
                {
                    "model": name,
                    "scenario": s,
                    "engine": engine,
                    "method": label,
                    "error": short(err),
                }
                for s in scenarios
            ]
    accuracy = {}
    for scenario_name in scenarios:
        scenario = SCENARIOS[scenario_name]
        example = example_batch(task.validation_data, scenario.batch_size)
        torch.set_num_threads(scenario.threads)
        models = {"float": task.model}
        compile_s, failed = {}, {}
        try:
            models["float compiled"], compile_s["float compiled"] = compile_module(
                task.model, example
            )
        except Exception as err:  # noqa: BLE001 - e.g. Dynamo cannot trace nn.LSTM
            failed["float compiled"] = short(err)
        for label, (_, quantized) in built.items():
            try:
                if quantized.needs_compile:
                    compile_s[label] = quantized.compile(example)
                if label not in accuracy:
                    accuracy[label] = score(quantized, task.validation_data, task.metric)
                with torch.no_grad():
                    quantized(example)
                models[label] = quantized
            except Exception as err:  # noqa: BLE001
                log(traceback.format_exc(limit=2))
                failed[label] = short(err)
        timings = measure_latency(models, example, scenario.threads, budget_s=1.0)
        eager = timings["float"].median_ms
        compiled = timings["float compiled"].median_ms if "float compiled" in timings else None
        rows.append(
            {
                "model": name,
                "scenario": scenario_name,
                "engine": "torch",
                "method": "fp32 eager",
                "ms": eager,
                "vs_eager": 1.0,
                "drop": 0.0,
                "size": 1.0,
            }
        )
        if compiled is None:
            rows.append(
                {
                    "model": name,
                    "scenario": scenario_name,
                    "engine": "torch",
                    "method": "fp32 compiled",
                    "error": failed["float compiled"],
                }
            )
        else:
            rows.append(
                {
                    "model": name,
                    "scenario": scenario_name,
                    "engine": "torch",
                    "method": "fp32 compiled",
                    "ms": compiled,
                    "vs_eager": eager / compiled,
                    "vs_compiled": 1.0,
                    "drop": 0.0,
                    "size": 1.0,
                    "compile_s": compile_s["float compiled"],
                }
            )
        for label, (engine, quantized) in built.items():
            row = {"model": name, "scenario": scenario_name, "engine": engine, "method": label}
            if label in failed:
                rows.append({**row, "error": failed[label]})
                continue
            ms = timings[label].median_ms
            row.update(
                ms=ms,
                vs_eager=eager / ms,
                drop=100 * (float_acc - accuracy[label]),
                size=serialized_size(quantized) / float_size,
                quantized=f"{len(quantized.quantized_layers)}/{len(quantized.layer_map)}",
            )
            if quantized.needs_compile:
                row.update(compile_s=compile_s[label])
                if compiled is not None:
                    row.update(vs_compiled=compiled / ms)
            rows.append(row)
        log(f"  {name} {scenario_name}: done")
    return rows


def fmt(row: dict, key: str, pattern: str) -> str:
    return pattern.format(row[key]) if key in row else "-"


def write_table(rows: list[dict], out: Path, models: list[str], minutes: float) -> None:
    import torchao

    machine = machine_info()
    lines = [
        "# torch.ao against torchao, measured on this machine",
        "",
        f"Written by `experiments/torchao_compare.py --models {' '.join(models)}` on "
        f"{datetime.date.today()} in {minutes:.0f} min.",
        "",
        f"- machine: {machine['machine.cpu']} ({machine['machine.cpu_capability']} kernels), "
        f"{machine['machine.cores']} cores, {platform.platform()}",
        f"- torch {torch.__version__}, torchao {torchao.__version__}, autoquant "
        f"{autoquant.__version__}",
        "- latency: median per call, all rows of a model+scenario timed in one interleaved "
        "measurement, each sample after an untimed call of the same model "
        "(`autoquant.measure.measure_latency`); differences of a few percent are "
        "noise on a 2-core machine",
        "- `vs eager`: eager float latency / this latency; `vs compiled`: compiled float latency "
        "/ this latency (compiled rows only). Compiled = `torch.compile`, Inductor, freezing on, "
        "`dynamic=False`; `compile s` is the first compilation on the timed shape",
        "- `drop`: accuracy points lost on the digits validation data; `size`: state_dict bytes "
        "/ float; `layers`: quantizable layers quantized / all",
        "",
        "| model | scenario | engine | method | ms | vs eager | vs compiled | drop | size | "
        "layers | compile s | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['scenario']} | {r['engine']} | {r['method']} | "
            f"{fmt(r, 'ms', '{:.3f}')} | {fmt(r, 'vs_eager', '{:.2f}x')} | "
            f"{fmt(r, 'vs_compiled', '{:.2f}x')} | {fmt(r, 'drop', '{:+.2f}')} | "
            f"{fmt(r, 'size', '{:.2f}')} | {r.get('quantized', '-')} | "
            f"{fmt(r, 'compile_s', '{:.1f}')} | {r.get('error', '')} |"
        )
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    # the eager-baseline scenarios: this table reports both baselines itself
    eager = [name for name, s in SCENARIOS.items() if s.baseline == "eager"]
    parser.add_argument("--scenarios", nargs="+", default=eager, choices=eager)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "TORCHAO.md")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []
    for name in args.models:
        print(f"{name} ...", flush=True)
        rows += compare_model(name, args.scenarios, lambda m: print(m, flush=True))
        write_table(rows, args.out, args.models, (time.perf_counter() - started) / 60)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
