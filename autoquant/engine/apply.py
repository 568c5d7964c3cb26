"""autoquant.engine.apply: build the quantized model a QuantConfig describes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn

from autoquant._warnings import quietly
from autoquant.engine.backends import BACKENDS, check_backend, quantized_engine
from autoquant.engine.config import QuantConfig
from autoquant.engine.data import (
    DEFAULT_ADAPTER,
    Adapter,
    as_args,
    call,
    check_reiterable,
    describe,
    take_inputs,
)
from autoquant.engine.layers import match_layers, quantizable_layers
from autoquant.engine.methods import get_method
from autoquant.engine.quantized import QuantizedModel, layer_map
from autoquant.errors import ConfigError, DataError, ModelError, UnsupportedError


def check_supported(config: QuantConfig) -> None:
    """Raise UnsupportedError, before any work, for a method/backend pair that cannot work."""
    method = get_method(config.method)
    if "backend" not in method.uses:
        return
    check_backend(config.backend)
    reason = method.unsupported_reason(config)
    if reason:
        raise UnsupportedError(
            f"{config.method} cannot run on the {config.backend!r} backend: {reason}. "
            f"Choose another backend (supported: "
            f"{[b for b in BACKENDS if b not in method.unsupported_backends]})."
        )


@quietly
def apply(
    model: nn.Module,
    config: QuantConfig,
    calibration_data: Iterable | None = None,
    train_data: Iterable | None = None,
    *,
    loss_fn: Callable | None = None,
    adapter: Adapter | None = None,
) -> QuantizedModel:
    """Quantize a copy of ``model`` as ``config`` says; ``model`` itself is never changed.

    Args:
        model: A trained float ``torch.nn.Module``.
        config: What to do (method, backend, observers, layers kept in float, ...).
        calibration_data: Batches ``(inputs, targets)`` or input tensors; every method reads
            at least one batch (to check the model runs), static methods read
            ``config.calibration_batches`` of them.
        train_data: ``(inputs, targets)`` batches, required by ``qat_int8``.
        loss_fn: Training loss for ``qat_int8``; cross-entropy when omitted.
        adapter: How batches become model inputs and targets (``Task.adapter``); by default
            they are read by their structure (``autoquant.engine.data.Adapter``).

    Returns:
        A QuantizedModel: call it like the original; ``.layer_map`` says what was quantized.

    Raises:
        ConfigError: ``config`` is not a QuantConfig or a keep_float pattern matches no layer.
        UnsupportedError: The method cannot work on this backend or model.
        DataError: The calibration or training data is missing, empty or too short.
        ModelError: The model fails on the calibration data before any quantization.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"The 'model' parameter of apply must be a torch.nn.Module. Got {type(model).__name__}."
        )
    if not isinstance(config, QuantConfig):
        raise ConfigError(
            f"The 'config' parameter of apply must be a QuantConfig. Got {type(config).__name__}."
        )
    method = get_method(config.method)
    check_supported(config)
    adapter = adapter or DEFAULT_ADAPTER
    count = config.calibration_batches if method.needs_calibration else 1
    inputs = take_inputs(calibration_data, count, "calibration_data", adapter)
    if method.needs_training:
        check_reiterable(train_data, "train_data")
        if not any(True for _ in train_data):
            raise DataError("The 'train_data' data is empty: qat_int8 needs training batches.")

    layers = quantizable_layers(model)
    kept = match_layers(layers, config.keep_float) if config.keep_float else set()
    chosen = [layer.name for layer in layers if layer.name not in kept]

    working = copy.deepcopy(model).eval()
    _check_forward(working, inputs[0])
    with quantized_engine(config.backend):
        quantized = method.quantize(
            working,
            config,
            layers=chosen,
            calibration_inputs=inputs,
            train_data=train_data,
            loss_fn=loss_fn or nn.CrossEntropyLoss(),
            adapter=adapter,
        )
    quantized.eval()
    result = QuantizedModel(
        quantized,
        config,
        layer_map(layers, quantized, method.layer_modes(quantized)),
        needs_compile=method.deploys_compiled(config),
    )
    try:
        _run(result, inputs[0])
    except Exception as err:  # noqa: BLE001 - a quantized model that cannot run is unsupported
        raise UnsupportedError(
            f"{config.label()} produced a model that fails on the calibration data: "
            f"{type(err).__name__}: {str(err).strip()[:300]}"
        ) from None
    return result


@torch.no_grad()
def _run(model: nn.Module, x) -> None:
    call(model, x)


def _check_forward(model: nn.Module, x) -> None:
    try:
        _run(model, x)
    except Exception as err:  # noqa: BLE001 - reported as the user's model failing, with cause
        args, kwargs = as_args(x)
        how = "keyword arguments" if kwargs else f"{len(args)} positional argument(s)"
        raise ModelError(
            f"The model's forward failed on the first calibration batch, called with {how}: "
            f"{describe(x)}: {type(err).__name__}: {str(err).strip()[:300]}. Check that the "
            f"data matches what the model expects, or give the task a transform_fn(batch) that "
            f"returns the model's inputs."
        ) from None
