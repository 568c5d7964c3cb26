"""QuantizedModel: a quantized module with the config that made it and its per-layer map."""

from __future__ import annotations

from typing import Any

import torch
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


def layer_map(
    layers: list[Layer],
    quantized: nn.Module,
    modes: dict[str, tuple[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """For each quantizable layer of the original model: what it became in ``quantized``.

    ``modes`` (layer name -> (mode, weight dtype)), when given, says which layers a method
    quantized where the module types cannot (an exported graph, tensor subclasses); the layers
    it leaves out are float.
    """
    result = {}
    for layer in layers:
        try:
            module = quantized.get_submodule(layer.name)
        except AttributeError:
            module = None
        if modes is not None:
            mode, dtype = modes.get(layer.name, ("float", "float32"))
        else:
            mode, dtype = _describe(module)
        result[layer.name] = {
            "type": layer.type,
            "quantized": mode in ("static", "dynamic", "weight_only"),
            "mode": mode,
            "weight_dtype": dtype,
            "module": type(module).__name__ if module is not None else None,
        }
    return result


class QuantizedModel(nn.Module):
    """The model ``autoquant.apply`` returns: call it like the original model.

    Attributes:
        module: The quantized torch module (eager; what is saved and exported).
        config: The QuantConfig that produced it.
        layer_map: Per quantizable layer of the original model: quantized or float, and how.
        needs_compile: Whether the method deploys it through torch.compile (torchao); such a
            model is compared with the float model compiled the same way.
        compiled: The compiled module once ``compile`` ran; calls then go through it.
        compile_seconds: What the first compilation took (0.0 before).
    """

    def __init__(
        self,
        module: nn.Module,
        config: QuantConfig,
        layer_map: dict,
        *,
        needs_compile: bool = False,
    ) -> None:
        super().__init__()
        self.module = module
        self.config = config
        self.layer_map = layer_map
        self.needs_compile = needs_compile
        # Outside the module tree: the compiled wrapper shares the weights, which must not be
        # counted twice in the state_dict (the serialized size) nor saved with the model.
        object.__setattr__(self, "compiled", None)
        self.compiled_shape: tuple[int, ...] | None = None
        self.compile_seconds = 0.0

    def compile(self, example: torch.Tensor, *, threads: int | None = None) -> float:
        """Compile the module as it is deployed (``autoquant.compile``) on ``example``'s shape,
        for ``threads`` CPU threads (default: torch's current setting); returns the compile
        seconds. Calls of that shape go through the compiled module afterwards."""
        from autoquant.compile import compile_module

        with quantized_engine(self.config.backend):
            compiled, self.compile_seconds = compile_module(self.module, example, threads=threads)
        object.__setattr__(self, "compiled", compiled)
        self.compiled_shape = tuple(example.shape)
        return self.compile_seconds

    @property
    def deployed(self) -> nn.Module:
        """The module as it runs: compiled when ``compile`` ran, the eager module otherwise."""
        return self.compiled if self.compiled is not None else self.module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # Only the shape compiled with freezing (and checked against eager) runs compiled;
        # another shape would recompile unchecked, without freezing. The eager graph runs the
        # same math.
        compiled_shape = bool(args) and tuple(getattr(args[0], "shape", ())) == self.compiled_shape
        module = self.deployed if compiled_shape else self.module
        # Quantized kernels read torch's process-wide engine; pin the one this model was built for.
        with quantized_engine(self.config.backend):
            return module(*args, **kwargs)

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
