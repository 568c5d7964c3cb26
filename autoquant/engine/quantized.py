"""QuantizedModel: a quantized module with the config that made it and its per-layer map."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autoquant.engine.backends import quantized_engine
from autoquant.engine.compile import canonical, inductor_settings
from autoquant.engine.config import QuantConfig
from autoquant.engine.data import tensors_of
from autoquant.engine.layers import Layer

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


def _shapes(inputs: Any) -> tuple:
    return tuple(tuple(t.shape) for t in tensors_of(inputs))


def _fits(args: tuple, kwargs: dict, compiled_shape: tuple[int, ...] | None) -> bool:
    """Whether a call is one batch of examples of the shape the model was compiled for."""
    if compiled_shape is None or kwargs or len(args) != 1:
        return False
    x = args[0]
    return isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[1:] == compiled_shape[1:]


def _in_compiled_batches(compiled: nn.Module, x: torch.Tensor, size: int) -> torch.Tensor | None:
    """``compiled`` on ``x`` in batches of the compiled size (the last one padded, then cut);
    None when the model's output is not one tensor of examples.

    So whatever is scored runs the kernels that are timed and deployed: another shape would
    compile again unchecked (without freezing), and the eager graph does not always compute
    what the compiled kernels do (measured on an AVX2 CPU: PT2E with the full 8-bit activation
    range departed from its eager graph by 2.1 of 14.8 once compiled).
    """
    outputs = []
    for start in range(0, len(x), size):
        batch = x[start : start + size]
        real = len(batch)
        if real < size:
            batch = torch.cat([batch, batch[-1:].expand(size - real, *batch.shape[1:])])
        output = compiled(canonical(batch))
        if not isinstance(output, torch.Tensor) or output.dim() == 0 or len(output) != size:
            return None
        outputs.append(output[:real])
    return torch.cat(outputs)


class QuantizedModel(nn.Module):
    """The model ``autoquant.apply`` returns: call it like the original model.

    Attributes:
        module: The quantized torch module (eager; what is saved and exported).
        config: The QuantConfig that produced it.
        layer_map: Per quantizable layer of the original model: quantized or float, and how.
        needs_compile: Whether the method deploys it through torch.compile (torchao); such a
            model is compared with the float model compiled the same way.
        compiled: The compiled module once ``compile`` ran; calls with examples of the shape
            it was compiled on then go through it, in batches of its size.
        compile_seconds: What the latest compilation took (0.0 before any).
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
        self.compiled_threads: int | None = None
        self._compiled_for: tuple | None = None  # (input shapes, threads) of the compilation
        self.compile_seconds = 0.0

    def compile(self, example: Any, *, threads: int | None = None) -> float:
        """Compile the module as it is deployed (``autoquant.compile``) on ``example``'s shape,
        for ``threads`` CPU threads (default: torch's current setting); returns the compile
        seconds. Calls of that shape go through the compiled module afterwards."""
        from autoquant.engine.compile import compile_module

        with quantized_engine(self.config.backend):
            compiled, self.compile_seconds = compile_module(self.module, example, threads=threads)
        object.__setattr__(self, "compiled", compiled)
        # Scoring goes through the compiled kernels for single-tensor inputs; other inputs are
        # scored eagerly (and timed compiled).
        self.compiled_shape = tuple(example.shape) if isinstance(example, torch.Tensor) else None
        self.compiled_threads = threads or torch.get_num_threads()
        self._compiled_for = (_shapes(example), self.compiled_threads)
        return self.compile_seconds

    def is_compiled_for(self, example: Any, threads: int) -> bool:
        """Whether ``compile`` ran on inputs shaped like ``example`` for ``threads`` threads."""
        return self.compiled is not None and self._compiled_for == (_shapes(example), threads)

    @property
    def deployed(self) -> nn.Module:
        """The module as it runs: compiled when ``compile`` ran, the eager module otherwise."""
        return self.compiled if self.compiled is not None else self.module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # Quantized kernels read torch's process-wide engine; pin the one this model was built for.
        with quantized_engine(self.config.backend):
            if self.compiled is not None and _fits(args, kwargs, self.compiled_shape):
                with inductor_settings(self.compiled_threads):
                    output = _in_compiled_batches(self.compiled, args[0], self.compiled_shape[0])
                if output is not None:
                    return output
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
