"""The layers of a model that quantization can touch, and selection by shell-style patterns."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable

from torch import nn

from autoquant.errors import ConfigError

#: Module types that at least one method quantizes.
QUANTIZABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.LSTM,
    nn.GRU,
)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One quantizable layer: its module name, type and share of the model's parameters."""

    name: str
    type: str
    params: int
    param_share: float


def quantizable_layers(model: nn.Module) -> list[Layer]:
    """The quantizable layers of ``model`` in module order."""
    total = sum(p.numel() for p in model.parameters()) or 1
    layers = []
    for name, module in model.named_modules():
        if name and isinstance(module, QUANTIZABLE_TYPES):
            params = sum(p.numel() for p in module.parameters())
            layers.append(Layer(name, type(module).__name__, params, params / total))
    return layers


def match_layers(
    layers: Iterable[Layer], patterns: Iterable[str], *, parameter: str = "keep_float"
) -> set[str]:
    """Names of the layers matched by any pattern; a pattern that matches nothing is an error.

    A pattern matches a layer by its full module name (``layer1.*``) or, for convenience, by
    its last part (``fc``).
    """
    names = [layer.name for layer in layers]
    matched: set[str] = set()
    for pattern in patterns:
        hits = {
            n for n in names if fnmatch.fnmatchcase(n, pattern) or n.rsplit(".", 1)[-1] == pattern
        }
        if not hits:
            shown = names if len(names) <= 12 else names[:12] + ["..."]
            raise ConfigError(
                f"The pattern {pattern!r} in {parameter!r} matches no quantizable layer. "
                f"The model's quantizable layers are {shown}."
            )
        matched |= hits
    return matched
