"""QuantizedModel: a quantized module with the config that made it and its per-layer map."""

from __future__ import annotations

from typing import Any

from torch import nn

from autoquant.backends import quantized_engine
from autoquant.config import QuantConfig
from autoquant.layers import Layer

_QUANTIZED_PACKAGES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")


def _describe(module: nn.Module | None) -> tuple[str, str]:
    """(what the layer became, its weight dtype) for a module of the quantized model."""
    if module is None:
        return "removed", "-"
    if hasattr(module, "module") and type(module).__name__ == "QuantWrapper":
        module = module.module
    kind = type(module).__module__
    if kind.startswith("torch.ao.nn.quantized.dynamic"):
        # Linear keeps its dtype on the packed weights, LSTM and GRU on the module itself.
        weight_dtype = getattr(getattr(module, "_packed_params", module), "dtype", None)
        return "dynamic", str(weight_dtype).replace("torch.", "")
    if kind.startswith(_QUANTIZED_PACKAGES):
        return "static", "qint8"
    return "float", "float32"


def layer_map(layers: list[Layer], quantized: nn.Module) -> dict[str, dict[str, Any]]:
    """For each quantizable layer of the original model: what it became in ``quantized``."""
    result = {}
    for layer in layers:
        try:
            module = quantized.get_submodule(layer.name)
        except AttributeError:
            module = None
        mode, dtype = _describe(module)
        result[layer.name] = {
            "type": layer.type,
            "quantized": mode in ("static", "dynamic"),
            "mode": mode,
            "weight_dtype": dtype,
            "module": type(module).__name__ if module is not None else None,
        }
    return result


class QuantizedModel(nn.Module):
    """The model ``autoquant.apply`` returns: call it like the original model.

    Attributes:
        module: The quantized torch module.
        config: The QuantConfig that produced it.
        layer_map: Per quantizable layer of the original model: quantized or float, and how.
    """

    def __init__(self, module: nn.Module, config: QuantConfig, layer_map: dict) -> None:
        super().__init__()
        self.module = module
        self.config = config
        self.layer_map = layer_map

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # Quantized kernels read torch's process-wide engine; pin the one this model was built for.
        with quantized_engine(self.config.backend):
            return self.module(*args, **kwargs)

    @property
    def quantized_layers(self) -> list[str]:
        return [name for name, entry in self.layer_map.items() if entry["quantized"]]

    @property
    def float_layers(self) -> list[str]:
        return [name for name, entry in self.layer_map.items() if not entry["quantized"]]

    def extra_repr(self) -> str:
        return (
            f"config={self.config.label()!r}, quantized={len(self.quantized_layers)}, "
            f"float={len(self.float_layers)}"
        )
