"""What the static methods share: FX graph mode with per-layer exclusion, an eager fallback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.ao.quantization import QConfigMapping, QuantWrapper, convert, prepare
from torch.ao.quantization.fx import utils as fx_utils

from autoquant.engine.data import call
from autoquant.engine.layers import quantizable_layers

#: Layer types eager mode can quantize one by one behind a QuantStub/DeQuantStub pair.
EAGER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


ONEDNN_AFFINE_WEIGHTS = (
    "oneDNN takes symmetric weights only (zero point 0); use qscheme='symmetric' with onednn"
)


def static_restriction(config) -> str | None:
    """The restriction both static methods share, on top of the backend table."""
    if config.backend == "onednn" and config.qscheme == "affine":
        return ONEDNN_AFFINE_WEIGHTS
    return None


@contextlib.contextmanager
def releasing_fx_models() -> Iterator[None]:
    """Let the models torch.ao's FX passes saw be freed once the passes are done.

    torch.ao caches ``assert_and_get_unique_device`` per module in an unbounded
    ``functools.cache``, which keeps every prepared and converted model alive, observers and
    all: measured, a 30-trial mobilenet_v2 study grew by 0.5 GB and a benchmark run to 24 GB.
    """
    try:
        yield
    finally:
        clear = getattr(fx_utils.assert_and_get_unique_device, "cache_clear", None)
        if clear is not None:  # a torch without the cache has nothing to release
            clear()


def qconfig_mapping(model: nn.Module, qconfig, layers: Iterable[str]) -> QConfigMapping:
    """Quantize everything with ``qconfig`` except the quantizable layers not in ``layers``.

    The modules fed only by layers kept in float (the batch norm and ReLU after a float conv,
    a pooling between two float layers) stay in float too: quantized, they would round the
    float layer's output to int8 anyway, so keeping the layer would not keep its output.
    """
    chosen = set(layers)
    mapping = QConfigMapping().set_global(qconfig)
    kept = [layer.name for layer in quantizable_layers(model) if layer.name not in chosen]
    for name in _float_region(model, kept):
        mapping.set_module_name(name, None)
    return mapping


def _float_region(model: nn.Module, kept: list[str]) -> list[str]:
    """``kept`` and every other module whose inputs all come from float modules of it."""
    if not kept:
        return []
    quantizable = {layer.name for layer in quantizable_layers(model)}
    region = set(kept)
    for node in torch.fx.symbolic_trace(model).graph.nodes:  # topological order
        if node.op != "call_module" or node.target in quantizable:
            continue
        sources = node.all_input_nodes
        if sources and all(s.op == "call_module" and s.target in region for s in sources):
            region.add(node.target)
    return [name for name in region if name in dict(model.named_modules())]


@torch.no_grad()
def calibrate(model: nn.Module, inputs: Sequence) -> None:
    for x in inputs:
        call(model, x)


def fx_trace_error(model: nn.Module) -> str | None:
    """None when torch.fx can trace ``model``; otherwise where and why it breaks."""
    try:
        torch.fx.symbolic_trace(model)
    except Exception as err:  # noqa: BLE001 - any tracing failure means "not traceable"
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
    return None


def eager_wrap_quantize(
    model: nn.Module, qconfig, layers: Iterable[str], inputs: Sequence[torch.Tensor]
) -> tuple[nn.Module, int]:
    """Quantize each chosen Linear/Conv alone, between its own QuantStub and DeQuantStub.

    Works on models FX cannot trace, at the price of a quantize/dequantize pair per layer.
    Returns the model and the number of layers wrapped.
    """
    wrapped = 0
    for name in layers:
        module = model.get_submodule(name)
        if type(module) not in EAGER_TYPES:
            continue
        parent_name, _, attr = name.rpartition(".")
        wrapper = QuantWrapper(module)
        wrapper.qconfig = qconfig
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, wrapper)
        wrapped += 1
    if wrapped:
        prepare(model, inplace=True)
        calibrate(model, inputs)
        convert(model, inplace=True)
    return model, wrapped
