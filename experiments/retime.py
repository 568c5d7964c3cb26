"""Retime, in a fresh process, configurations that a long run compared: each is built twice and
timed with float, interleaved (``measure_latency``), over several rounds.

A benchmark or warm-start run times its head-to-heads late in a long process on a shared
machine; this says whether their ranking holds when measured alone. The checks are the ones
RETIME.md records: the digits CNN's PT2E recommendations of an earlier WARM_START.md (which
layers stay in float), mobilenet_v2's bs64-t2 head-to-head of RESULTS.md (the plain recipe,
the sweep's best and autoquant's pick at 0.25 points), and mobilenet_v2's PT2E pick of the
warm-start runs (4.44x and 6.81x in the two head-to-heads of one run, in one process).
``--classifier`` times instead what the prior's classifier rule rests on: PT2E static int8 at
batch 64 with the last Linear kept in float against every layer quantized, on the digits CNN,
resnet18 and mobilenet_v2.

    .venv/bin/python experiments/retime.py
    .venv/bin/python experiments/retime.py --classifier
"""

from __future__ import annotations

import argparse
import dataclasses

import autoquant  # noqa: F401 - silences torch.ao's deprecation noise
from autoquant import QuantConfig, apply
from autoquant.measure import FloatReference, get_scenario, measure_latency
from autoquant.tasks import digits_task

PT2E_MINMAX = QuantConfig("pt2e_static_int8", "x86", activation_observer="minmax")
#: (model, scenario, {label: configuration})
CHECKS = [
    (
        "cnn",
        "bs64-t2",
        {
            "fc, block1.0 in float": dataclasses.replace(
                PT2E_MINMAX, keep_float=("fc", "block1.0")
            ),
            "fc in float": dataclasses.replace(PT2E_MINMAX, keep_float=("fc",)),
            "all quantized": PT2E_MINMAX,
        },
    ),
    (
        "mobilenet_v2",
        "bs64-t2",
        {
            "recipe: static int8 x86 per-channel": QuantConfig("static_int8", "x86"),
            "sweep best: x86 histogram per-tensor symmetric": QuantConfig(
                "static_int8", "x86", weight_observer="minmax", qscheme="symmetric"
            ),
            "autoquant: onednn histogram symmetric full-range": QuantConfig(
                "static_int8", "onednn", qscheme="symmetric", reduce_range=False
            ),
            "warm start's rules pick: PT2E x86 histogram": QuantConfig("pt2e_static_int8", "x86"),
        },
    ),
]
PT2E = QuantConfig("pt2e_static_int8", "x86")  # the prior's first candidate at batch 64


def _classifier_check(model_name: str, classifier: str, **extra: QuantConfig) -> tuple:
    in_float = dataclasses.replace(PT2E, keep_float=(classifier,))
    return (
        model_name,
        "bs64-t2",
        {f"{classifier} in float": in_float, "all quantized": PT2E, **extra},
    )


CLASSIFIER_CHECKS = [
    # with the CNN pick of a warm-start run's study without a warm start (RETIME.md)
    _classifier_check(
        "cnn",
        "fc",
        **{
            "fc in float, minmax full-range (unwarmed study's pick)": dataclasses.replace(
                PT2E_MINMAX, reduce_range=False, keep_float=("fc",)
            )
        },
    ),
    _classifier_check("resnet18", "network.fc"),
    _classifier_check("mobilenet_v2", "network.classifier.1"),
]
BUILDS = 2
ROUNDS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--classifier",
        action="store_true",
        help="time PT2E with the classifier in float against all layers quantized",
    )
    checks = CLASSIFIER_CHECKS if parser.parse_args().classifier else CHECKS
    for model_name, scenario_name, configs in checks:
        task = digits_task(model_name)
        scenario = get_scenario(scenario_name)
        reference = FloatReference.of(task, scenario)  # compiles what deploys compiled
        example = reference.example
        models = {"float": task.model}
        for label, config in configs.items():
            for build in range(1, BUILDS + 1):
                model = apply(task.model, config, task.calibration_data)
                timed = reference.deploy(model)
                models[f"{label} (build {build})"] = timed["candidate"]
        print(f"\n{model_name} at {scenario_name}: speedup over float, {ROUNDS} rounds")
        rounds = [
            measure_latency(models, example, scenario.threads, budget_s=1.5) for _ in range(ROUNDS)
        ]
        for name in models:
            if name != "float":
                speedups = [t["float"].median_ms / t[name].median_ms for t in rounds]
                print(f"  {name:60s} " + "  ".join(f"{s:.2f}x" for s in speedups))


if __name__ == "__main__":
    main()
