"""Search spaces: declarative YAML files, validated on load; the only caller of trial.suggest_*.

A space file lists the choices of each dimension. Dimensions that only apply to some methods
are conditional: a dynamic method gets no observer, fp32 gets nothing but its name. Which
layers stay in float is chosen in one of three modes (``layers.mode``):

- ``none``: every quantizable layer is quantized;
- ``per_layer``: one quantize/keep-float choice per layer (for models with few layers);
- ``ranked``: the k most sensitive layers stay in float, k in [0, ``max_float``] searched;
  sensitivity is measured once per study by quantizing each layer alone.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from autoquant.engine.backends import BACKENDS
from autoquant.engine.config import QuantConfig
from autoquant.engine.methods import available_methods, get_method
from autoquant.engine.observers import (
    ACTIVATION_OBSERVERS,
    INT8_DTYPES,
    QSCHEMES,
    WEIGHT_OBSERVERS,
)
from autoquant.errors import ConfigError

LAYER_MODES = ("none", "per_layer", "ranked")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The choices a study searches over (see the module docstring and the README)."""

    name: str
    methods: tuple[str, ...]
    backends: tuple[str, ...] = ("x86",)
    activation_observers: tuple[str, ...] = tuple(ACTIVATION_OBSERVERS)
    weight_observers: tuple[str, ...] = tuple(WEIGHT_OBSERVERS)
    qschemes: tuple[str, ...] = ("affine",)
    reduce_range: tuple[bool, ...] = (True,)
    activation_dtypes: tuple[str, ...] = ("quint8",)
    weight_dtypes: tuple[str, ...] = ("qint8",)
    calibration_batches: tuple[int, ...] = (8,)
    qat_epochs: tuple[int, ...] = (1,)
    qat_lr: tuple[float, float] = (1e-4, 1e-4)
    compile: tuple[str, ...] = ("off",)
    layer_mode: str = "none"
    max_float: int = 0
    description: str = ""

    @property
    def needs_sensitivity(self) -> bool:
        return self.layer_mode == "ranked" and self.max_float > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def suggest(
        self, trial, layers: Sequence[str], sensitive_first: Sequence[str] = ()
    ) -> QuantConfig:
        """The config for ``trial``: every choice through ``trial.suggest_*``.

        Args:
            trial: An Optuna trial.
            layers: Names of the model's quantizable layers.
            sensitive_first: The same names, most sensitive first (``ranked`` mode).
        """
        method = trial.suggest_categorical("method", list(self.methods))
        uses = get_method(method).uses
        fields: dict[str, Any] = {"method": method}
        if "backend" in uses:
            allowed = [b for b in self.backends if b not in get_method(method).unsupported_backends]
            # The backend choices differ per method, and Optuna wants fixed choices per name.
            fields["backend"] = trial.suggest_categorical(f"backend[{method}]", allowed)
        self._choose(trial, fields, uses, ("activation_observer", "weight_observer"))
        if "qscheme" in uses:
            # oneDNN takes symmetric weights only: no choice to make there.
            fields["qscheme"] = (
                "symmetric"
                if fields.get("backend") == "onednn"
                else trial.suggest_categorical("qscheme", list(self.qschemes))
            )
        self._choose(
            trial,
            fields,
            uses,
            ("reduce_range", "activation_dtype", "weight_dtype", "calibration_batches"),
        )
        if "qat_epochs" in uses:
            fields["qat_epochs"] = trial.suggest_categorical("qat_epochs", list(self.qat_epochs))
            low, high = self.qat_lr
            fields["qat_lr"] = (
                low if low == high else trial.suggest_float("qat_lr", low, high, log=True)
            )
        if "compile" in uses:
            fields["compile"] = trial.suggest_categorical("compile", list(self.compile))
        if "keep_float" in uses:
            fields["keep_float"] = self._suggest_float_layers(trial, layers, sensitive_first)
        return QuantConfig(**fields)

    def _choose(self, trial, fields: dict, uses, names: Sequence[str]) -> None:
        """One categorical choice per field of ``names`` the method uses, among this space's
        values for it (the field's plural, e.g. ``weight_dtypes``)."""
        for name in names:
            if name in uses:
                fields[name] = trial.suggest_categorical(name, list(self.values_of(name)))

    def values_of(self, field: str) -> tuple:
        """This space's choices for the config field ``field`` (its plural, e.g.
        ``weight_dtypes``, or the same name, e.g. ``reduce_range``)."""
        plural = f"{field}s"
        return getattr(self, plural if hasattr(self, plural) else field)

    def compile_skipped(self, method: str) -> str | None:
        """Why this space's ``compile: inductor`` does not apply to ``method`` (None if it
        does, or the space does not offer it)."""
        impl = get_method(method)
        if "inductor" in self.compile and impl.compile_support == "no":
            return impl.no_compile_reason
        return None

    def inside(
        self,
        configs: Sequence[QuantConfig],
        layers: Sequence[str],
        sensitive_first: Sequence[str] = (),
        *,
        exclude: Sequence[QuantConfig] = (),
    ) -> list[QuantConfig]:
        """``configs`` in canonical form, each once, in order: those this space holds and
        ``exclude`` does not."""
        result, seen = [], {c.canonical().to_json() for c in exclude}
        for config in configs:
            config = config.canonical()
            key = config.to_json()
            if key not in seen and self.params_for(config, layers, sensitive_first) is not None:
                seen.add(key)
                result.append(config)
        return result

    def params_for(
        self, config: QuantConfig, layers: Sequence[str], sensitive_first: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        """The trial parameters that make ``suggest`` return ``config`` (for enqueueing known
        candidates as first trials); None when the config lies outside this space."""
        method = get_method(config.method) if config.method in self.methods else None
        if method is None:
            return None
        uses = method.uses
        params: dict[str, Any] = {"method": config.method}
        chosen = (
            "activation_observer",
            "weight_observer",
            "reduce_range",
            "activation_dtype",
            "weight_dtype",
            "qat_epochs",
        )
        choices = {field: self.values_of(field) for field in chosen}
        if "backend" in uses:
            if config.backend not in self.backends or config.backend in method.unsupported_backends:
                return None
            params[f"backend[{config.method}]"] = config.backend
        for field, allowed in choices.items():
            if field in uses:
                if getattr(config, field) not in allowed:
                    return None
                params[field] = getattr(config, field)
        if "qscheme" in uses and config.backend != "onednn":
            if config.qscheme not in self.qschemes:
                return None
            params["qscheme"] = config.qscheme
        if "calibration_batches" in uses:
            # The number of calibration batches does not define a recipe: take the nearest.
            params["calibration_batches"] = min(
                self.calibration_batches, key=lambda n: abs(n - config.calibration_batches)
            )
        if "qat_lr" in uses and self.qat_lr[0] != self.qat_lr[1]:
            params["qat_lr"] = min(max(config.qat_lr, self.qat_lr[0]), self.qat_lr[1])
        if "compile" in uses:
            if config.compile not in self.compile:
                return None
            params["compile"] = config.compile
        elif config.compile != "off":
            return None
        if "keep_float" in uses:
            keep = config.keep_float
            if self.layer_mode == "per_layer" and set(keep) <= set(layers):
                params.update({f"float[{name}]": name in keep for name in layers})
            elif self.layer_mode == "ranked" and self.max_float >= len(keep):
                if tuple(sensitive_first[: len(keep)]) != keep:
                    return None  # ranked mode can only keep the k most sensitive layers
                params["float_layers"] = len(keep)
            elif keep:
                return None
        elif config.keep_float:
            return None
        return params

    def _suggest_float_layers(self, trial, layers, sensitive_first) -> tuple[str, ...]:
        if self.layer_mode == "per_layer":
            return tuple(
                name
                for name in layers
                if trial.suggest_categorical(f"float[{name}]", [False, True])
            )
        if self.layer_mode == "ranked" and self.max_float > 0:
            k = trial.suggest_int("float_layers", 0, min(self.max_float, len(layers)))
            return tuple(sensitive_first[:k])
        return ()


def _spaces_folder():
    # A source checkout reads the top-level search_spaces/; an installed autoquant reads the
    # copy installed as the autoquant.search_spaces package.
    checkout = Path(__file__).resolve().parents[2] / "search_spaces"
    if checkout.is_dir():
        return checkout
    return importlib.resources.files("autoquant.search_spaces")


def builtin_spaces() -> list[str]:
    """Names of the spaces shipped with autoquant."""
    return sorted(p.name[:-5] for p in _spaces_folder().iterdir() if p.name.endswith(".yaml"))


def load_space(name_or_path: str | Path | SearchSpace) -> SearchSpace:
    """A built-in space by name (``default``, ``cnn``, ...) or a YAML file by path."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if text.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise ConfigError(f"The search space file {text!r} does not exist.")
        return parse_space(path.read_text(), source=str(path), name=path.stem)
    if text not in builtin_spaces():
        raise ConfigError(
            f"The 'space' parameter must be a built-in space {builtin_spaces()} or a path to a "
            f"YAML file. Got {text!r} instead."
        )
    source = _spaces_folder() / f"{text}.yaml"
    return parse_space(source.read_text(), source=f"{text}.yaml", name=text)


def parse_space(text: str, *, source: str = "<string>", name: str = "custom") -> SearchSpace:
    """Validate a space file's text; errors name the file, the key, the rule and the value."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    return _SpaceReader(source).read(data, name)


class _SpaceReader:
    TOP_KEYS = {
        "description",
        "methods",
        "backends",
        "activation_observers",
        "weight_observers",
        "qschemes",
        "reduce_range",
        "activation_dtypes",
        "weight_dtypes",
        "calibration_batches",
        "compile",
        "qat",
        "layers",
    }

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, must: str, got: Any) -> ConfigError:
        return ConfigError(f"{self.source}: the key {key!r} must be {must}. Got {got!r} instead.")

    def unknown(self, data: dict, allowed: set[str], where: str) -> None:
        extra = sorted(set(data) - allowed)
        if extra:
            raise ConfigError(
                f"{self.source}: unknown key(s) {extra}{where}; the keys are {sorted(allowed)}."
            )

    def choices(self, data: dict, key: str, allowed: Sequence, default=None) -> tuple:
        if key not in data:
            if default is None:
                raise self.fail(key, f"a non-empty list of {list(allowed)}", None)
            return tuple(default)
        value = data[key]
        if not isinstance(value, list) or not value or any(v not in allowed for v in value):
            raise self.fail(key, f"a non-empty list of {list(allowed)}", value)
        return tuple(dict.fromkeys(value))

    def int_list(self, data: dict, key: str, default: Sequence[int]) -> tuple[int, ...]:
        value = data.get(key, list(default))
        ok = (
            isinstance(value, list)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        )
        if not ok:
            raise self.fail(key, "a non-empty list of ints >= 1", value)
        return tuple(value)

    def read(self, data: Any, name: str) -> SearchSpace:
        if not isinstance(data, dict):
            raise ConfigError(
                f"{self.source}: a search space must be a mapping of keys to choices."
            )
        self.unknown(data, self.TOP_KEYS, "")
        fields: dict[str, Any] = {"name": name}
        fields["description"] = str(data.get("description", ""))
        fields["methods"] = self.choices(data, "methods", available_methods())
        fields["backends"] = self.choices(data, "backends", list(BACKENDS), ["x86"])
        fields["activation_observers"] = self.choices(
            data, "activation_observers", list(ACTIVATION_OBSERVERS), list(ACTIVATION_OBSERVERS)
        )
        fields["weight_observers"] = self.choices(
            data, "weight_observers", list(WEIGHT_OBSERVERS), list(WEIGHT_OBSERVERS)
        )
        fields["qschemes"] = self.choices(data, "qschemes", list(QSCHEMES), ["affine"])
        fields["reduce_range"] = self.choices(data, "reduce_range", [True, False], [True])
        fields["activation_dtypes"] = self.choices(
            data, "activation_dtypes", list(INT8_DTYPES), ["quint8"]
        )
        fields["weight_dtypes"] = self.choices(data, "weight_dtypes", list(INT8_DTYPES), ["qint8"])
        fields["calibration_batches"] = self.int_list(data, "calibration_batches", [8])
        if isinstance(data.get("compile"), list):
            # YAML 1.1 reads a bare `off` as false: take it as the word the user wrote
            data = {**data, "compile": ["off" if v is False else v for v in data["compile"]]}
        fields["compile"] = self.choices(data, "compile", ["off", "inductor"], ["off"])
        fields.update(self.read_qat(data.get("qat", {})))
        fields.update(self.read_layers(data.get("layers", {})))
        self.check_methods_have_backends(fields)
        return SearchSpace(**fields)

    def read_qat(self, qat: Any) -> dict[str, Any]:
        if not isinstance(qat, dict):
            raise self.fail("qat", "a mapping with 'epochs' and 'lr'", qat)
        self.unknown(qat, {"epochs", "lr"}, " under 'qat'")
        lr = qat.get("lr", [1e-4, 1e-4])
        ok = (
            isinstance(lr, list)
            and len(lr) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in lr)
            and 0 < lr[0] <= lr[1] <= 1
        )
        if not ok:
            raise self.fail("qat.lr", "a range [low, high] with 0 < low <= high <= 1", lr)
        epochs = self.int_list({"qat.epochs": qat.get("epochs", [1])}, "qat.epochs", [1])
        return {"qat_epochs": epochs, "qat_lr": (float(lr[0]), float(lr[1]))}

    def read_layers(self, layers: Any) -> dict[str, Any]:
        if not isinstance(layers, dict):
            raise self.fail("layers", "a mapping with 'mode' (and 'max_float')", layers)
        self.unknown(layers, {"mode", "max_float"}, " under 'layers'")
        mode = layers.get("mode", "none")
        if mode not in LAYER_MODES:
            raise self.fail("layers.mode", f"one of {list(LAYER_MODES)}", mode)
        max_float = layers.get("max_float", 3 if mode == "ranked" else 0)
        if isinstance(max_float, bool) or not isinstance(max_float, int) or max_float < 0:
            raise self.fail("layers.max_float", "an int >= 0", max_float)
        if mode != "ranked" and "max_float" in layers:
            raise self.fail("layers.max_float", "given only with mode 'ranked'", max_float)
        return {"layer_mode": mode, "max_float": max_float}

    def check_methods_have_backends(self, fields: dict[str, Any]) -> None:
        for method in fields["methods"]:
            impl = get_method(method)
            if "backend" in impl.uses and all(
                b in impl.unsupported_backends for b in fields["backends"]
            ):
                raise self.fail(
                    "backends",
                    f"a list with at least one backend {method} runs on "
                    f"(it cannot run on {sorted(impl.unsupported_backends)})",
                    list(fields["backends"]),
                )
