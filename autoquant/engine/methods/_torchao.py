"""What the torchao methods share: the import, torch.export, layer selection, the layer map.

torchao is the successor of torch.ao.quantization: PT2E (``prepare_pt2e``/``convert_pt2e``
on a ``torch.export`` graph) and ``quantize_`` (weights swapped for tensor subclasses). Both
give models that ``torch.export`` saves as ``.pt2``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

import torch
from torch import nn

from autoquant.engine.methods.base import Method
from autoquant.errors import UnsupportedError

#: Every torchao method registers with this engine name (the capability table shows it).
ENGINE = "torchao"

#: The torchao version these methods were written and measured against.
TORCHAO_VERSION = "0.18.0"


def require_torchao():
    """The torchao module; a clear error when it is missing (it is a dependency of autoquant)."""
    try:
        import torchao
    except ImportError as err:
        raise UnsupportedError(
            f"The torchao methods need torchao=={TORCHAO_VERSION} (pip install "
            f"torchao=={TORCHAO_VERSION}); it could not be imported: {err}."
        ) from None
    # Importing the x86 quantizer registers torchao's Inductor lowering passes for the whole
    # process. Done here, for every torchao method, so a compiled model does not depend on
    # whether a PT2E model was quantized earlier in the process: measured on an AVX2 CPU (AMD
    # EPYC), the passes made compiled torchao_dynamic_int8 outputs depart from eager by 7.6
    # (of 31.5) on the MLP, which autoquant.engine.compile then refuses; without them it was exact.
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401

    return torchao


def export_program(
    model: nn.Module, example, needed_by: str = "the torchao engine"
) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` on the model inputs ``example`` (a tensor, positional or
    keyword arguments) with a dynamic batch dimension on every input tensor, so the exported
    graph runs on any batch size. Non-strict: strict export clears Dynamo's caches, so every
    model compiled before it in the process would compile again."""
    from autoquant.engine.data import as_args

    args, kwargs = as_args(example)

    def dynamic(value):
        if isinstance(value, torch.Tensor):
            return {0: torch.export.Dim.AUTO} if value.dim() else None
        if isinstance(value, dict):
            return {k: dynamic(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(dynamic(v) for v in value)
        return None

    shapes = dynamic(args)
    if kwargs:  # with keyword arguments, export keys the shapes by argument name
        names = _positional_names(model, len(args))
        shapes = {**dict(zip(names, shapes, strict=True)), **dynamic(kwargs)}
    try:
        return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=shapes, strict=False)
    except Exception as err:  # noqa: BLE001 - any export failure means "this engine cannot"
        raise UnsupportedError(
            f"torch.export cannot capture this model, which {needed_by} needs: "
            f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
        ) from None


def _positional_names(model: nn.Module, count: int) -> list[str]:
    """The names of the first ``count`` parameters of ``model.forward`` (export keys dynamic
    shapes by argument name when keyword arguments are given too)."""
    import inspect

    names = list(inspect.signature(model.forward).parameters)
    return names[:count] if len(names) >= count else [f"arg{i}" for i in range(count)]


def linear_filter(chosen: Iterable[str], multiple_of: int = 1) -> Callable[[nn.Module, str], bool]:
    """The ``filter_fn`` of ``quantize_`` that takes the chosen ``nn.Linear`` layers only.

    Exact type, as in the dynamic torch.ao methods: attention's ``out_proj`` (a Linear subclass
    whose weight MultiheadAttention reads directly) stays float. ``multiple_of`` skips layers
    whose input width a group size does not divide.
    """
    names = set(chosen)

    def take(module: nn.Module, fqn: str) -> bool:
        return type(module) is nn.Linear and fqn in names and module.in_features % multiple_of == 0

    return take


def subclass_layer_modes(model: nn.Module, mode: str, dtype: str) -> dict[str, tuple[str, str]]:
    """The layers of a ``quantize_`` model whose weight became a torchao tensor subclass."""
    return {
        name: (mode, dtype)
        for name, module in model.named_modules()
        if type(getattr(module, "weight", None)).__module__.startswith("torchao.")
    }


def _owner(node: torch.fx.Node) -> str | None:
    """The module name that a node of an exported graph came from."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    return list(stack.values())[-1][0]


def graph_layer_modes(graph_module: torch.fx.GraphModule) -> dict[str, tuple[str, str]]:
    """The layers of a converted PT2E graph whose weight is read through an int8 dequantize,
    i.e. whose conv or linear runs in int8 once Inductor lowers the pattern."""
    modes = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or len(node.args) < 2:
            continue
        weight = node.args[1]
        if isinstance(weight, torch.fx.Node) and "dequantize" in str(weight.target):
            owner = _owner(node)
            if owner is not None:
                modes[owner] = ("static", "qint8")
    return modes


def granularity(config):
    """The torchao granularity ``config.weight_observer`` means: one scale per output row
    (``per_channel_minmax``) or one per tensor (``minmax``)."""
    from torchao.quantization import PerRow, PerTensor

    return PerRow() if config.weight_observer == "per_channel_minmax" else PerTensor()


class QuantizeMethod(Method):
    """A torchao ``quantize_`` method: the chosen Linear layers' weights become a torchao
    tensor subclass; the model is deployed through torch.compile.

    Subclasses set ``mode`` and ``weight_dtype`` (for the layer map), ``group_size`` when
    the weights are quantized in groups, and build the torchao config in ``torchao_config``.
    """

    engine = ENGINE
    compiled = True
    mode: ClassVar[str]
    weight_dtype: ClassVar[str] = "int8"
    group_size: ClassVar[int] = 1

    def torchao_config(self, config):
        """The torchao ``AOBaseConfig`` that ``config`` asks for."""
        raise NotImplementedError

    def quantize(self, model, config, *, layers, **_):
        require_torchao()
        from torchao.quantization import quantize_

        chosen = linear_filter(layers, self.group_size)
        quantize_(model, self.torchao_config(config), filter_fn=chosen)
        return model

    def layer_modes(self, quantized):
        return subclass_layer_modes(quantized, self.mode, self.weight_dtype)
