"""Per-layer sensitivity: the drop when only that layer is quantized, and its output SQNR."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable

import torch

from autoquant.engine.config import QuantConfig
from autoquant.engine.layers import quantizable_layers
from autoquant.errors import AutoQuantError
from autoquant.measure import output_sqnr, score_and_answers
from autoquant.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class LayerSensitivity:
    name: str
    drop_points: float  # metric drop when this layer alone is quantized
    sqnr_db: float  # output signal-to-quantization-noise ratio against float (higher = safer)


def reference_config(backend: str = "x86") -> QuantConfig:
    """The config each layer is quantized with alone: static int8, the default observers."""
    return QuantConfig(
        method="static_int8",
        backend=backend,
        reduce_range=backend != "onednn",
        qscheme="symmetric" if backend == "onednn" else "affine",
    )


def model_fingerprint(model: torch.nn.Module) -> str:
    """A digest of the model's class and weights: the same model gives the same digest."""
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(
            tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()[:16]


def cached_sensitivity(
    task: Task,
    config: QuantConfig | None = None,
    *,
    log: Callable[[str], None] = print,
) -> list[LayerSensitivity]:
    """``measure_sensitivity``, computed once per (model, task, backend, observer) and kept in
    ``$AUTOQUANT_CACHE/sensitivity``."""
    from autoquant.tasks.zoo import cache_dir

    config = config or reference_config()
    key = (
        f"{task.name}-{task.model_name}-{model_fingerprint(task.model)}-{config.backend}-"
        f"{config.activation_observer}-{config.weight_observer}"
    )
    path = cache_dir() / "sensitivity" / f"{key.replace('/', '_').replace(':', '_')}.json"
    if path.exists():
        return [LayerSensitivity(**row) for row in json.loads(path.read_text())]
    layers = len(quantizable_layers(task.model))
    log(f"measuring the sensitivity of {layers} layers (cached for this model in {path.parent})")
    result = measure_sensitivity(task, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps([dataclasses.asdict(r) for r in result]))
    os.replace(tmp, path)
    return result


def measure_sensitivity(
    task: Task,
    config: QuantConfig | None = None,
    *,
    on_layer: Callable[[LayerSensitivity], None] | None = None,
) -> list[LayerSensitivity]:
    """Quantize each quantizable layer alone (the others kept in float) and measure the drop.

    Returns the layers most sensitive first (largest drop, then lowest SQNR).
    """
    config = config or reference_config()
    names = [layer.name for layer in quantizable_layers(task.model)]
    float_score, float_answers = score_and_answers(task.model, task.validation_data, task)
    results = []
    for name in names:
        others = tuple(n for n in names if n != name)
        try:
            model = task.build(dataclasses.replace(config, keep_float=others))
            value, answers = score_and_answers(model, task.validation_data, task)
            sqnr = output_sqnr(answers, float_answers)
            result = LayerSensitivity(
                name,
                task.metric.drop(float_score, value),
                float("inf") if sqnr is None else sqnr,
            )
        except (AutoQuantError, RuntimeError):
            # A layer this method cannot quantize alone costs nothing to keep in float.
            result = LayerSensitivity(name, 0.0, float("inf"))
        results.append(result)
        if on_layer:
            on_layer(result)
    return sorted(results, key=lambda r: (-r.drop_points, r.sqnr_db))
