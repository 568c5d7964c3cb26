"""QuantConfig: the one description of a quantization that crosses every boundary.

The search space produces it, a method consumes it, MLflow stores it as JSON and
``autoquant.apply(model, config, calibration_data)`` rebuilds the same model from it later.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from autoquant._validation import check_bool, check_choice, check_float, check_int
from autoquant.engine.backends import BACKENDS
from autoquant.engine.observers import (
    ACTIVATION_OBSERVERS,
    INT8_DTYPES,
    QSCHEMES,
    WEIGHT_OBSERVERS,
)
from autoquant.errors import ConfigError

#: Bumped whenever a field changes meaning; ``from_dict`` refuses configs from the future.
CONFIG_VERSION = 1

_OWNER = "QuantConfig"

#: ``compile`` values: run eagerly, or through torch.compile with Inductor (weights frozen).
COMPILE_MODES = ("off", "inductor")


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """How to quantize a model.

    Attributes:
        method: A registered method name (``autoquant.engine.methods.available_methods()``).
        backend: Quantized engine: ``x86``, ``fbgemm``, ``qnnpack`` or ``onednn``.
        activation_observer: ``minmax``, ``moving_average_minmax``, ``histogram`` or
            ``percentile``.
        weight_observer: ``minmax`` (one range per tensor) or ``per_channel_minmax``.
        qscheme: ``affine`` or ``symmetric`` quantization ranges.
        reduce_range: Use 7 of the 8 activation bits (avoids overflow on x86 without VNNI).
        activation_dtype: ``quint8`` or ``qint8``: the int8 type of quantized activations
            (ONNX Runtime's static int8; torch's kernels take ``quint8``).
        weight_dtype: ``qint8`` or ``quint8``: the int8 type of quantized weights (ONNX
            Runtime's int8 methods; torch's kernels take ``qint8``).
        keep_float: Shell-style patterns (fnmatch) over module names of layers left in float.
        calibration_batches: Number of calibration batches fed through the observers.
        qat_epochs: Epochs of fake-quant fine-tuning (``qat_int8`` only).
        qat_lr: Learning rate of that fine-tuning.
        compile: ``off`` or ``inductor``: deploy through ``torch.compile`` (Inductor, weights
            frozen; ``autoquant.compile``). Only methods whose models Inductor can run take it
            (``fp32``; the torchao methods are always compiled): torch.ao's quantized kernels
            cannot be compiled.
        version: Schema version of this config.
    """

    method: str = "static_int8"
    backend: str = "x86"
    activation_observer: str = "histogram"
    weight_observer: str = "per_channel_minmax"
    qscheme: str = "affine"
    reduce_range: bool = True
    activation_dtype: str = "quint8"
    weight_dtype: str = "qint8"
    keep_float: tuple[str, ...] = ()
    calibration_batches: int = 8
    qat_epochs: int = 1
    qat_lr: float = 1e-4
    compile: str = "off"
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        from autoquant.engine.methods import available_methods  # loaded on first use

        if isinstance(self.keep_float, (list, tuple)):
            object.__setattr__(self, "keep_float", tuple(self.keep_float))
        check_choice(_OWNER, "method", self.method, available_methods())
        check_choice(_OWNER, "backend", self.backend, BACKENDS)
        check_choice(_OWNER, "activation_observer", self.activation_observer, ACTIVATION_OBSERVERS)
        check_choice(_OWNER, "weight_observer", self.weight_observer, WEIGHT_OBSERVERS)
        check_choice(_OWNER, "qscheme", self.qscheme, QSCHEMES)
        check_bool(_OWNER, "reduce_range", self.reduce_range)
        check_choice(_OWNER, "activation_dtype", self.activation_dtype, INT8_DTYPES)
        check_choice(_OWNER, "weight_dtype", self.weight_dtype, INT8_DTYPES)
        if not isinstance(self.keep_float, tuple) or not all(
            isinstance(p, str) and p for p in self.keep_float
        ):
            raise ConfigError(
                f"The 'keep_float' parameter of {_OWNER} must be a list of non-empty module "
                f"name patterns (fnmatch). Got {self.keep_float!r} instead."
            )
        check_int(_OWNER, "calibration_batches", self.calibration_batches, low=1)
        check_int(_OWNER, "qat_epochs", self.qat_epochs, low=1)
        check_float(_OWNER, "qat_lr", self.qat_lr, low=0.0, high=1.0, low_open=True)
        check_choice(_OWNER, "compile", self.compile, COMPILE_MODES)
        check_int(_OWNER, "version", self.version, low=1)
        if self.version > CONFIG_VERSION:
            raise ConfigError(
                f"The 'version' parameter of {_OWNER} must be <= {CONFIG_VERSION} (this "
                f"autoquant's schema). Got {self.version} instead; upgrade autoquant to read it."
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        data = dataclasses.asdict(self)
        data["keep_float"] = list(self.keep_float)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantConfig:
        """Rebuild a config from ``to_dict`` output; unknown keys are refused."""
        if not isinstance(data, dict):
            raise ConfigError(f"A {_OWNER} must be built from a dict. Got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"Unknown {_OWNER} field(s) {unknown}; the fields are {sorted(known)}."
            )
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QuantConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"A {_OWNER} JSON text could not be parsed: {err}.") from None
        return cls.from_dict(data)

    def canonical(self) -> QuantConfig:
        """This config with the fields its method ignores reset to their defaults.

        Two configs that quantize a model the same way have the same canonical form, so a
        search never evaluates the same quantization twice.
        """
        from autoquant.engine.methods import get_method

        used = get_method(self.method).uses
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(self)
            if f.name not in used and f.name not in ("method", "version")
        }
        return dataclasses.replace(self, **defaults)

    def for_layers(self, layers: Sequence[str]) -> QuantConfig:
        """The canonical config as applied to a model whose quantizable layers are ``layers``:
        keeping every one of them in float is float (``fp32``)."""
        config = self.canonical()
        if config.keep_float and layers and set(layers) <= set(config.keep_float):
            return QuantConfig(method="fp32")
        return config

    def label(self) -> str:
        """A short name a person can scan, e.g. ``static_int8 x86 histogram``."""
        from autoquant.engine.methods import get_method

        used = get_method(self.method).uses
        parts = [self.method]
        parts += [self.backend] if "backend" in used else []
        parts += [self.activation_observer] if "activation_observer" in used else []
        # the choices that differ from the defaults, so two labels never hide a difference
        # that matters (one bit of activation range can decide the budget)
        default = QuantConfig()
        for field, text in [
            ("weight_observer", "per-tensor"),
            ("qscheme", self.qscheme),
            ("reduce_range", "full-range"),
            ("activation_dtype", f"act:{self.activation_dtype}"),
            ("weight_dtype", f"weight:{self.weight_dtype}"),
            ("qat_epochs", f"{self.qat_epochs}ep"),
        ]:
            if field in used and getattr(self, field) != getattr(default, field):
                parts.append(text)
        parts += [f"float:{len(self.keep_float)}"] if self.keep_float else []
        parts += ["compiled"] if self.compile != "off" else []
        return " ".join(parts)
