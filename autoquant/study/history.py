"""Learning from past studies: a model of drop and speedup trained on the MLflow store.

Every finished trial of every autoquant study in the store is one example: the features of its
model (``autoquant.analysis``, logged on the study's parent run) and of its configuration, with
the drop and speedup it measured. Two random forests (scikit-learn) predict drop and log-speedup
for the configurations of a new model; the best predicted within budget warm-start its study.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Iterable

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.engine.methods import available_methods, get_method
from autoquant.study.space import SearchSpace
from autoquant.tracking.record import FEATURE_PARAM_PREFIX, run_metric, tagged

_METHODS = sorted(available_methods())
_BACKENDS = ["x86", "fbgemm", "qnnpack", "onednn"]
_ACT = ["minmax", "moving_average_minmax", "histogram", "percentile"]


def config_features(config: QuantConfig) -> list[float]:
    """A fixed-length encoding of a configuration."""
    return [
        *[float(config.method == m) for m in _METHODS],
        *[float(config.backend == b) for b in _BACKENDS],
        *[float(config.activation_observer == a) for a in _ACT],
        float(config.weight_observer == "per_channel_minmax"),
        float(config.qscheme == "symmetric"),
        float(config.reduce_range),
        float(config.activation_dtype == "qint8"),
        float(config.weight_dtype == "quint8"),
        float(len(config.keep_float)),
        float(config.compile != "off"),
    ]


@dataclasses.dataclass(frozen=True)
class Example:
    study: str
    model_features: dict[str, float]
    config: QuantConfig
    drop_points: float
    speedup: float
    scenario: str


def load_history(
    tracking_uri: str | None = None, *, exclude_model: str | None = None
) -> list[Example]:
    """The finished trials of every autoquant study in the MLflow store."""
    from autoquant.tracking.tracker import study_runs

    examples = []
    for experiment, parent, children in study_runs(tracking_uri, tagged(state="complete")):
        params = parent.data.params
        features = {
            k[len(FEATURE_PARAM_PREFIX) :]: float(v)
            for k, v in params.items()
            if k.startswith(FEATURE_PARAM_PREFIX)
        }
        if not features or params.get("model") == exclude_model:
            continue
        for run in children:
            fields = {
                k: run.data.params[k]
                for k in QuantConfig.__dataclass_fields__
                if k in run.data.params
            }
            examples.append(
                Example(
                    study=experiment.name,
                    model_features=features,
                    config=_config_from_params(fields),
                    drop_points=run.data.metrics[run_metric("drop_points")],
                    speedup=run.data.metrics[run_metric("speedup")],
                    scenario=params.get("scenario", ""),
                )
            )
    return examples


def _config_from_params(params: dict[str, str]) -> QuantConfig:
    parse = {
        "reduce_range": lambda v: v == "True",
        "keep_float": lambda v: tuple(json.loads(v)),
        "calibration_batches": int,
        "qat_epochs": int,
        "qat_lr": float,
        "version": int,
    }
    return QuantConfig(**{k: parse.get(k, str)(v) for k, v in params.items()})


class HistoryRanker:
    """Predicts drop and speedup of configurations for a model from past studies."""

    def __init__(self, examples: list[Example], *, scenario: str | None = None) -> None:
        if scenario:
            examples = [e for e in examples if e.scenario == scenario] or examples
        if len(examples) < 5:
            raise ValueError(
                f"need at least 5 past trials to learn from; the store has {len(examples)}"
            )
        self.feature_names = sorted(examples[0].model_features)
        self.studies = sorted({e.study for e in examples})
        self.n_examples = len(examples)
        x = np.array([self._row(e.model_features, e.config) for e in examples])
        self.drop_model = RandomForestRegressor(
            n_estimators=200, random_state=0, min_samples_leaf=2
        )
        self.speed_model = RandomForestRegressor(
            n_estimators=200, random_state=0, min_samples_leaf=2
        )
        self.drop_model.fit(x, [e.drop_points for e in examples])
        self.speed_model.fit(x, [math.log(max(e.speedup, 1e-3)) for e in examples])

    def _row(self, model_features: dict[str, float], config: QuantConfig) -> list[float]:
        return [model_features.get(n, 0.0) for n in self.feature_names] + config_features(config)

    def predict(self, model_features: dict[str, float], configs: list[QuantConfig]):
        """(predicted drop in points, predicted speedup) per config."""
        x = np.array([self._row(model_features, c) for c in configs])
        return self.drop_model.predict(x), np.exp(self.speed_model.predict(x))

    def rank(
        self,
        model_features: dict[str, float],
        configs: list[QuantConfig],
        budget: Budget,
        top: int = 3,
    ) -> list[tuple[QuantConfig, float, float]]:
        """The ``top`` configs by predicted speedup among those predicted within budget, at most
        one per method, backend and compile choice while others remain.

        One per family: variants that differ only in observer or range are predicted alike, and
        a warm start spent on three of them tests one guess three times.
        """
        drops, speedups = self.predict(model_features, configs)
        scored = sorted(
            zip(configs, drops, speedups, strict=True),
            key=lambda t: (t[1] > budget.max_drop, -t[2]),
        )
        families = {}
        for entry in scored:
            families.setdefault(_family(entry[0]), entry)
        picked = list(families.values())[:top]
        picked += [e for e in scored if e not in picked][: top - len(picked)]
        return [(c, float(d), float(s)) for c, d, s in picked]


def _family(config: QuantConfig) -> tuple[str, str, str]:
    return config.method, config.backend, config.compile


def alternate(rules: list, learned: list) -> list:
    """``rules[0], learned[0], rules[1], learned[1], ...``: the history's picks alternate with
    the rules', rules first.

    A ranker learned from a handful of models cannot extrapolate to an architecture unlike
    them (measured: it put an LSTM's float-is-best behind three PT2E guesses), while the rules
    cover every kind of model. The k-th pick of the rules comes k-1 trials later than alone,
    the history's k trials later.
    """
    pairs = itertools.zip_longest(rules, learned)
    return [item for pair in pairs for item in pair if item is not None]


def space_configs(space: SearchSpace) -> list[QuantConfig]:
    """Every configuration of ``space`` with all layers quantized (the per-layer choice is left
    to the search), in canonical form, without repeats."""
    configs = {}
    for method in space.methods:
        impl = get_method(method)
        backends = [b for b in space.backends if b not in impl.unsupported_backends]
        grid = itertools.product(
            backends or ["x86"],
            space.activation_observers,
            space.weight_observers,
            space.qschemes,
            space.reduce_range,
            space.activation_dtypes,
            space.weight_dtypes,
        )
        for backend, act, weight, qscheme, reduce_range, act_dtype, weight_dtype in grid:
            if "qscheme" in impl.uses and backend == "onednn":
                qscheme = "symmetric"
            config = QuantConfig(
                method=method,
                backend=backend,
                activation_observer=act,
                weight_observer=weight,
                qscheme=qscheme,
                reduce_range=reduce_range,
                activation_dtype=act_dtype,
                weight_dtype=weight_dtype,
                calibration_batches=max(space.calibration_batches),
                qat_epochs=space.qat_epochs[0],
                qat_lr=space.qat_lr[0],
            )
            for compile_mode in space.compile if "compile" in impl.uses else ["off"]:
                variant = dataclasses.replace(config, compile=compile_mode).canonical()
                configs[variant.to_json()] = variant
    return list(configs.values())


def history_candidates(
    model_features: dict[str, float],
    space: SearchSpace,
    budget: Budget,
    *,
    tracking_uri: str | None = None,
    exclude_model: str | None = None,
    scenario: str | None = None,
    top: int = 3,
    exclude: Iterable[QuantConfig] = (),
) -> tuple[list[tuple[QuantConfig, float, float]], list[str]]:
    """The ``top`` configurations of ``space`` the history predicts best for a model, and the
    studies it learned from; ``([], [])`` when the store holds too little history.

    ``exclude``: configurations already proposed (the rules'). The history's picks go beside
    them, so a pick equal to one of them would be a slot wasted: measured in a warm-start run,
    two of the three history picks for the digits CNN were the rules' first two.
    """
    examples = load_history(tracking_uri, exclude_model=exclude_model)
    try:
        ranker = HistoryRanker(examples, scenario=scenario)
    except ValueError:
        return [], []
    proposed = {config.canonical().to_json() for config in exclude}
    configs = [c for c in space_configs(space) if c.to_json() not in proposed]
    return ranker.rank(model_features, configs, budget, top=top), ranker.studies
