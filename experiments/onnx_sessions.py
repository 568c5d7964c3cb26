"""One ONNX graph in several ONNX Runtime sessions, timed in one interleaved measurement with and
without eager PyTorch among them: how far apart do identical sessions time?

autoquant times an ONNX Runtime candidate interleaved with eager PyTorch float, in one process.
Identical sessions should time alike; where they do not, the spread bounds how far an ONNX
Runtime figure of that scenario can be trusted. Before autoquant pinned ONNX Runtime's worker
threads (``autoquant.engine.ort.worker_affinities``) they spread by up to 1.7x beside eager
PyTorch at two threads (``ONNX-sessions.md``; with ``OMP_WAIT_POLICY=PASSIVE``,
``ONNX-sessions-passive.md``); pinned, ``ONNX-sessions-pinned.md``.

    PYTHONPATH=. python experiments/onnx_sessions.py --out experiments/ONNX-sessions-pinned.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import onnxruntime
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoquant.engine.ort import OrtModule, export_onnx, worker_affinities  # noqa: E402
from autoquant.measure import SCENARIOS, example_batch, measure_latency  # noqa: E402
from autoquant.tasks import digits_task  # noqa: E402
from autoquant.tracking.tracker import machine_info  # noqa: E402

SESSIONS = 4


def spread(name: str, scenario: str, with_eager: bool) -> dict[str, float]:
    """Median ms of each of ``SESSIONS`` sessions of ``name``'s float graph (and eager float)."""
    task = digits_task(name)
    setting = SCENARIOS[scenario]
    example = example_batch(task.validation_data, setting.batch_size, task)
    exported = export_onnx(task.model, example)
    models = {"eager PyTorch float": task.model} if with_eager else {}
    for i in range(SESSIONS):
        session = OrtModule(exported.onnx_bytes, exported.output_spec, exported.input_order)
        models[f"session {i + 1}"] = session
    timings = measure_latency(models, example, setting.threads, budget_s=1.5)
    return {label: timing.median_ms for label, timing in timings.items()}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cnn", "transformer"])
    parser.add_argument("--scenarios", nargs="+", default=["bs1-t1", "bs64-t2"])
    parser.add_argument("--out", type=Path, default=Path("experiments/ONNX-sessions-pinned.md"))
    args = parser.parse_args(argv)
    info = machine_info()
    policy = os.environ.get("OMP_WAIT_POLICY", "not set")
    lines = [
        "# One ONNX graph in several ONNX Runtime sessions",
        "",
        f"Produced by `python experiments/onnx_sessions.py {' '.join(argv)}` on "
        f"{datetime.date.today()}; {info['machine.cpu']}, {info['machine.cores']} cores, torch "
        f"{torch.__version__} ({info['machine.cpu_capability']}), onnxruntime "
        f"{onnxruntime.__version__}; OMP_WAIT_POLICY {policy}; ONNX Runtime's worker threads "
        f"pinned at 2 threads: {worker_affinities(2) or 'no'}.",
        "",
        f"Median ms per call of {SESSIONS} sessions of the same float graph, timed in one "
        "interleaved measurement, without and with eager PyTorch float among them; "
        "'spread' is the slowest session over the fastest.",
        "",
        "| model | scenario | eager PyTorch in the rounds | eager ms | sessions' ms | spread |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.models:
        for scenario in args.scenarios:
            for with_eager in (False, True):
                ms = spread(name, scenario, with_eager)
                eager = ms.pop("eager PyTorch float", None)
                values = list(ms.values())
                row = (
                    f"| {name} | {scenario} | {'yes' if with_eager else 'no'} | "
                    f"{'' if eager is None else f'{eager:.3f}'} | "
                    f"{', '.join(f'{v:.3f}' for v in values)} | "
                    f"{max(values) / min(values):.2f}x |"
                )
                print(row, flush=True)
                lines.append(row)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
