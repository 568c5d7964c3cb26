"""How far apart do configurations with the same kernels time? The measurement noise of a
head-to-head, for reading the benchmark's "fastest within noise" verdicts.

Each pair is rebuilt and timed together with float, interleaved (``measure_latency``), several
times; torch.ao's and PT2E's int8 kernels are the same whether activations use 7 or 8 bits
(``reduce_range``), so their gap is noise; x86 against fbgemm compares two engines.

    .venv/bin/python experiments/noise_check.py
"""

from __future__ import annotations

import dataclasses

from autoquant import QuantConfig, apply
from autoquant.measure import FloatReference, get_scenario, measure_latency
from autoquant.tasks import digits_task

STATIC = dict(activation_observer="histogram", weight_observer="per_channel_minmax")
#: (model, scenario, a configuration, the fields its partner changes)
PAIRS = [
    ("resnet18", "bs1-t1", QuantConfig("static_int8", "fbgemm", **STATIC), {"reduce_range": False}),
    ("mobilenet_v2", "bs1-t1", QuantConfig("static_int8", "x86", **STATIC), {"backend": "fbgemm"}),
    ("mobilenet_v2", "bs64-t2", QuantConfig("pt2e_static_int8", **STATIC), {"reduce_range": False}),
]
REPEATS = 3


def main() -> None:
    for model_name, scenario_name, config, changed in PAIRS:
        task = digits_task(model_name)
        scenario = get_scenario(scenario_name)
        second = dataclasses.replace(config, **changed)
        reference = FloatReference.of(task, scenario)  # compiles what deploys compiled
        example = reference.example
        models = {}
        for c in (config, second):
            model = apply(task.model, c, task.calibration_data)
            timed = reference.deploy(model)
            models[c.label()] = timed["candidate"]
        models["float"] = task.model
        a, b = config.label(), second.label()
        for repeat in range(REPEATS):
            t = measure_latency(models, example, scenario.threads, budget_s=1.0, min_rounds=10)
            sa, sb = (t["float"].median_ms / t[n].median_ms for n in (a, b))
            print(
                f"{model_name} {scenario_name} #{repeat + 1}: {a} {sa:.2f}x, {b} {sb:.2f}x, "
                f"gap {abs(sa - sb) / max(sa, sb):.1%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
