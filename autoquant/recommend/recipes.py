"""Fixed configurations (the plain recipes a person would try by hand) and measuring them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from autoquant.engine.config import QuantConfig
from autoquant.errors import AutoQuantError
from autoquant.measure import FloatReference, Metrics, Scenario, measure
from autoquant.tasks.base import Task

#: What a person does without autoquant: the one-line dynamic recipe, and default static int8.
PLAIN_RECIPES: dict[str, QuantConfig] = {
    "quantize_dynamic Linear qint8": QuantConfig(method="dynamic_int8", weight_observer="minmax"),
    "static int8 x86 per-channel": QuantConfig(method="static_int8", backend="x86"),
}

#: Beside float in every final round: the plain recipes and fp16 dynamic quantization of every
#: Linear, the three things a person tries by hand, timed head to head with the search's best.
FINAL_ROUND_RECIPES: dict[str, QuantConfig] = {
    **PLAIN_RECIPES,
    "quantize_dynamic Linear float16": QuantConfig(method="dynamic_fp16"),
}

#: The option that loses nothing: the float model compiled with Inductor (weights frozen). A
#: study whose space offers ``compile: inductor`` tries it among its first trials.
COMPILED_FLOAT = QuantConfig(method="fp32", compile="inductor")

#: The demo's fixed configurations: every method, and static int8 on every backend.
DEMO_CONFIGS: dict[str, QuantConfig] = {
    "float (fp32)": QuantConfig(method="fp32"),
    **PLAIN_RECIPES,
    "dynamic fp16": QuantConfig(method="dynamic_fp16"),
    "static int8 fbgemm per-channel": QuantConfig(method="static_int8", backend="fbgemm"),
    "static int8 onednn symmetric": QuantConfig(
        method="static_int8", backend="onednn", qscheme="symmetric", reduce_range=False
    ),
    "static int8 qnnpack per-tensor": QuantConfig(
        method="static_int8", backend="qnnpack", weight_observer="minmax", reduce_range=False
    ),
    "qat int8 x86 (1 epoch)": QuantConfig(method="qat_int8", backend="x86"),
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One fixed configuration measured: its metrics, or why it failed."""

    label: str
    config: QuantConfig
    metrics: Metrics | None
    error: str | None = None


def measure_configs(
    task: Task,
    configs: dict[str, QuantConfig],
    scenario: Scenario,
    *,
    data: Iterable | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Quantize ``task.model`` with each config and measure it on ``data`` (validation data by
    default) against float; a config that fails is reported with its reason, not raised."""
    reference = FloatReference.of(task, scenario, data)
    outcomes = []
    for label, config in configs.items():
        try:
            metrics = measure(task.build(config), reference)
            outcome = Outcome(label, config, metrics)
        except (AutoQuantError, RuntimeError) as err:
            outcome = Outcome(label, config, None, f"{type(err).__name__}: {err}")
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    return outcomes
