"""The contract every quantization method fulfils."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from torch import nn

from autoquant.engine.data import Adapter

if TYPE_CHECKING:  # the config consults this registry: a runtime import would be a cycle
    from autoquant.engine.config import QuantConfig

#: Measured with torch 2.14.1: torch.compile of a torch.ao quantized model falls back to eager
#: ("quantized nyi in meta tensors"), so it would be timed as compiled and gain nothing.
TORCH_AO_CANNOT_COMPILE = (
    "torch.compile cannot run torch.ao's quantized kernels (they fall back to eager: "
    "'quantized nyi in meta tensors'); the model runs uncompiled"
)


class Method(abc.ABC):
    """A way to quantize a model, registered under ``name`` with ``@register_method``.

    A method receives a private copy of the user's model in eval mode, with the backend
    already made torch's quantized engine, and returns the quantized module. It may modify the
    copy; it must not keep references to the data.

    Class attributes:
        name: The name used in configs and search spaces.
        summary: One line for ``autoquant methods`` and the README.
        uses: The QuantConfig fields that change what this method does; the others are ignored
            (and reset by ``QuantConfig.canonical``).
        unsupported_backends: Backend -> the reason it cannot work, known before any work.
        notes: Backend -> a restriction on the other fields (``unsupported_reason`` enforces it).
        needs_calibration: Whether calibration batches are fed through observers.
        needs_training: Whether training batches are required.
        engine: The library that does the work: ``torch.ao`` (eager/FX, deprecated by torch)
            or ``torchao`` (PT2E and ``quantize_``).
        compiled: Whether the model is deployed through ``torch.compile`` (Inductor); such a
            model is timed compiled, against the float model compiled the same way.
        deploys_as: The method whose models this one's are built like (the same kernels and
            size; only the weights and scales differ), or None. A configuration of this method
            cannot be faster or smaller than its twin of that method, only more accurate.
        requires: What the model must offer for this method to apply (``inspect`` checks it
            once, and a method the model cannot take leaves the search with the reason):
            ``dynamic`` a Linear or recurrent layer, ``static`` a torch.fx graph or Linear/Conv
            layers to wrap, ``fx`` a torch.fx graph, ``export`` a torch.export capture,
            ``linear`` a Linear layer; None for nothing.
        simplicity: Moving parts to deploy and to trust, fewest first: the simpler method wins
            a tie in the recommendation.
        repairable: Whether a broken budget can be bought back by changing its observers,
            range or layers (the recovery ladder); float and float16 have nothing to repair.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    uses: ClassVar[frozenset[str]] = frozenset()
    unsupported_backends: ClassVar[dict[str, str]] = {}
    notes: ClassVar[dict[str, str]] = {}
    needs_calibration: ClassVar[bool] = False
    needs_training: ClassVar[bool] = False
    engine: ClassVar[str] = "torch.ao"
    compiled: ClassVar[bool] = False
    deploys_as: ClassVar[str | None] = None
    requires: ClassVar[str | None] = None
    simplicity: ClassVar[int] = 5
    repairable: ClassVar[bool] = False
    #: Why ``compile: inductor`` cannot apply to this method's models (empty when it can).
    no_compile_reason: ClassVar[str] = TORCH_AO_CANNOT_COMPILE

    def unsupported_reason(self, config: QuantConfig) -> str | None:
        """Why ``config`` cannot work with this method, known before any work; None if it can."""
        return self.unsupported_backends.get(config.backend)

    def deploys_compiled(self, config: QuantConfig) -> bool:
        """Whether the model ``config`` gives is deployed (and timed) through torch.compile:
        always for a ``compiled`` method, on ``compile: inductor`` for one that ``uses`` it."""
        return self.compiled or ("compile" in self.uses and config.compile == "inductor")

    @property
    def compile_support(self) -> str:
        """``always``, ``optional`` (the ``compile`` field decides) or ``no``."""
        if self.compiled:
            return "always"
        return "optional" if "compile" in self.uses else "no"

    def layer_modes(self, quantized: nn.Module) -> dict[str, tuple[str, str]] | None:
        """Layer name -> (mode, weight dtype) for the quantized layers of ``quantized``, for
        methods whose result the module-type rules of ``autoquant.quantized`` cannot read (an
        exported graph, tensor subclasses); None to use those rules."""
        return None

    @abc.abstractmethod
    def quantize(
        self,
        model: nn.Module,
        config: QuantConfig,
        *,
        layers: Sequence[str],
        calibration_inputs: Sequence,
        train_data: Sequence | None,
        loss_fn: Callable | None,
        adapter: Adapter,
    ) -> nn.Module:
        """Return the quantized model.

        Args:
            model: A deep copy of the user's model, in eval mode.
            config: The validated configuration.
            layers: Names of the quantizable layers to quantize (those kept in float removed).
            calibration_inputs: Up to ``config.calibration_batches`` model inputs (a tensor,
                positional or keyword arguments: call the model with
                ``autoquant.engine.data.call``), or one when the method needs no calibration.
            train_data: Training batches when ``needs_training``.
            loss_fn: The training loss when ``needs_training``.
            adapter: Reads the training batches (``adapter.inputs``, ``adapter.targets``) and
                picks the tensor the loss takes from the outputs (``adapter.output``).
        """
