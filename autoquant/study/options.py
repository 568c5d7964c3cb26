"""The settings of a search, in one place: ``SearchOptions``.

``autoquant.search`` takes them as keywords, an experiment file as keys and ``autoquant search``
as flags; all three build a ``SearchOptions``, so each default is written once (below) and
each value is checked once (``__post_init__``), with errors that name the setting, what it
must be and what it got. A field's ``key`` is its name in an experiment file and, with ``--``
and dashes, its flag (``n_trials``: ``trials``, ``--trials``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from autoquant._validation import check_bool, check_choice, check_float, check_int
from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.errors import ConfigError
from autoquant.measure import Scenario, get_scenario
from autoquant.study.space import SearchSpace, load_space

#: Objective name -> the values Optuna minimizes.
OBJECTIVES = {
    "latency": ("latency_ratio",),
    "size": ("size_ratio",),
    "pareto": ("latency_ratio", "size_ratio", "drop"),
}
WARM_STARTS = ("rules", "history", "none")


def _setting(default: Any, help: str, key: str | None = None, **more: Any) -> Any:
    """A field with its help text and its name in files and flags (``key``; the field's name
    when None). ``python_only``: not a flag or file key (it takes Python objects only)."""
    return dataclasses.field(default=default, metadata={"help": help, "key": key, **more})


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How a search runs. Every field has a default; values are checked and normalized when
    the options are made (``budget`` becomes a Budget, ``space`` a SearchSpace, ``scenario`` a
    Scenario), so a mistake fails before any work starts.

    Attributes:
        budget: Largest drop allowed: ``"1pt"`` (points), ``"1%"`` (relative) or a Budget.
        space: A built-in space name (``default``, ``cnn``, ``transformer``, ``mobile``,
            ``quick``, ``onnx``, ``runtimes``), a YAML path or a SearchSpace.
        objective: ``latency`` (fastest), ``size`` (smallest) or ``pareto`` (latency, size
            and drop together).
        scenario: Batch size and threads the latency is measured for (``bs1-t1``,
            ``bs64-t2``; ``-compiled`` at the end: against compiled float).
        n_trials: Trials in the study in total (a resumed study runs only the rest).
        timeout: Seconds after which no new trial starts.
        trial_timeout: Seconds after which a trial is stopped and recorded as failed.
        storage: Optuna storage URL (``sqlite:///autoquant.db``,
            ``postgresql+psycopg2://...``) to keep and resume the study; in memory when None
            or ``""``.
        study_name: Name of the study in ``storage``; derived from the task when None.
        seed: Sampler seed: the same seed gives the same configurations.
        n_jobs: Trials evaluated in parallel threads.
        prune: Stop trials whose drop on a quarter of the validation data is already far
            past the budget.
        warm_start: First trials of a new study: ``"rules"`` (the prior candidates of
            ``autoquant.prior``, then the plain recipes), ``"history"`` (the rules' candidates
            alternating with those a model learned from past studies ranks best; the rules
            alone when there is too little history), configs (the plain recipes follow) or
            ``"none"``.
        history_uri: MLflow store the ``"history"`` warm start learns from; the tracker's
            store when None.
        isolate: Evaluate each trial in a worker process, so that a crash in a quantized
            kernel (or a hang past ``trial_timeout``) costs one trial, not the study.
        confidence: Confidence mode: a configuration is within the budget only when the
            one-sided upper bound of its drop's confidence interval at this level (0.5 to 1,
            e.g. 0.9) is, not its measured drop alone. None (the default): the measured drop.
            The search then prefers configurations whose drop the validation data can
            vouch for; it cannot make a small validation set say more than it holds.
    """

    budget: Budget | str | float = _setting("1pt", "largest drop: 1pt (points) or 1%% (relative)")
    space: SearchSpace | str = _setting("default", "built-in space name or YAML path")
    objective: str = _setting(
        "latency", "what to minimize within the budget", choices=tuple(OBJECTIVES)
    )
    scenario: Scenario | str = _setting(
        "bs1-t1", "bs{N}-t{M}: N examples a call on M threads, optionally ending in -compiled"
    )
    n_trials: int | None = _setting(40, "trials in the study in total", key="trials", type=int)
    timeout: float | None = _setting(None, "seconds after which no trial starts", type=float)
    trial_timeout: float | None = _setting(
        None, "seconds after which a trial is stopped and recorded as failed", type=float
    )
    storage: str | None = _setting(
        None, "Optuna storage URL, from which the study resumes ('': in memory)"
    )
    study_name: str | None = _setting(
        None, "study name (default: derived from the settings)", key="study"
    )
    seed: int | None = _setting(0, "sampler seed: same seed, same configurations", type=int)
    n_jobs: int = _setting(1, "trials in parallel threads", key="jobs", type=int)
    prune: bool = _setting(True, "stop trials already far past the budget on a quarter of the data")
    warm_start: str | tuple[QuantConfig, ...] = _setting(
        "rules",
        "first trials: the expert rules, the rules alternating with a model learned from past "
        "studies in MLflow, or none",
        choices=WARM_STARTS,
    )
    history_uri: str | None = _setting(
        None, "MLflow store the history warm start learns from", python_only=True
    )
    isolate: bool = _setting(False, "evaluate trials in a worker process: a crash costs one trial")
    confidence: float | None = _setting(
        None,
        "confidence mode: feasible only when the drop's upper confidence bound at this level "
        "(e.g. 0.9) is within the budget (default: the measured drop is)",
        type=float,
    )

    def __post_init__(self) -> None:
        owner = "SearchOptions"
        normalized = {
            "budget": Budget.parse(self.budget),
            "space": load_space(self.space),
            "scenario": get_scenario(self.scenario),
        }
        check_choice(owner, "objective", self.objective, OBJECTIVES)
        if isinstance(self.warm_start, str):
            check_choice(owner, "warm_start", self.warm_start, WARM_STARTS)
        else:
            configs = tuple(self.warm_start)
            if not all(isinstance(c, QuantConfig) for c in configs):
                raise ConfigError(
                    f"The 'warm_start' parameter of {owner} must be one of {list(WARM_STARTS)} "
                    f"or QuantConfigs. Got {self.warm_start!r} instead."
                )
            normalized["warm_start"] = configs
        if self.n_trials is None and self.timeout is None:
            raise ConfigError(
                f"{owner} needs 'n_trials' or 'timeout' (or both) so that the search ends; "
                f"both are None."
            )
        if self.n_trials is not None:
            check_int(owner, "n_trials", self.n_trials, low=1)
        check_int(owner, "n_jobs", self.n_jobs, low=1)
        if self.seed is not None:
            check_int(owner, "seed", self.seed)
        for name in ("timeout", "trial_timeout"):
            seconds = getattr(self, name)
            if seconds is not None:
                check_float(owner, name, seconds, low=0.0, high=math.inf, low_open=True)
        if self.confidence is not None:
            check_float(owner, "confidence", self.confidence, low=0.5, high=0.999, low_open=True)
        for name in ("prune", "isolate"):
            check_bool(owner, name, getattr(self, name))
        if self.storage == "":  # what a command line can say for "no storage"
            normalized["storage"] = None
        for name in ("storage", "study_name", "history_uri"):
            value = getattr(self, name)
            if name in normalized:
                continue
            if value is not None and not (isinstance(value, str) and value):
                raise ConfigError(
                    f"The {name!r} parameter of {owner} must be a non-empty string or None. "
                    f"Got {value!r} instead."
                )
        for name, value in normalized.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(
        cls, options: SearchOptions | None = None, owner: str = "search", **settings: Any
    ) -> SearchOptions:
        """``options`` (the defaults when None) with ``settings`` given by field name
        replacing its values; ``budget`` or ``space`` given as None keep theirs."""
        for name in ("budget", "space"):
            if name in settings and settings[name] is None:
                del settings[name]
        _check_names(settings, {f.name for f in dataclasses.fields(cls)}, owner, "a setting")
        base = options if options is not None else cls()
        if not isinstance(base, cls):
            raise ConfigError(
                f"The 'options' parameter of {owner} must be a SearchOptions or None. Got "
                f"{type(base).__name__} instead."
            )
        try:
            return dataclasses.replace(base, **settings) if settings else base
        except ConfigError as err:  # the user called ``owner``, not SearchOptions
            raise ConfigError(str(err).replace("of SearchOptions", f"of {owner}")) from None

    @classmethod
    def from_keys(
        cls,
        values: Mapping[str, Any],
        source: str,
        defaults: Mapping[str, Any] | None = None,
        flags: Iterable[str] = (),
    ) -> SearchOptions:
        """Options from an experiment file's keys and the command's flags (``trials``, not
        ``n_trials``: see ``key_of``), over ``defaults`` (keys too). An error names the flag
        (``--trials``) when the value came from one (its key is in ``flags``), else the key
        and ``source``, the file."""
        names = {key_of(f): f.name for f in settable_fields()}
        _check_names(values, set(names), source, "a key")
        merged = {**(defaults or {}), **values}
        try:
            return cls(**{names[k]: v for k, v in merged.items()})
        except ConfigError as err:
            message = str(err)
            for key, name in names.items():  # the user wrote a key or a flag, not the field
                if f"{name!r} parameter of SearchOptions" in message:
                    if key in flags:
                        flag = "--" + key.replace("_", "-")
                        raise ConfigError(
                            message.replace(f"The {name!r} parameter of SearchOptions", flag)
                        ) from None
                    message = message.replace(
                        f"{name!r} parameter of SearchOptions", f"{key!r} key"
                    )
            raise ConfigError(f"{source}: {message}") from None


def settable_fields() -> list[dataclasses.Field]:
    """The fields an experiment file or a flag can set (all but the Python-only ones)."""
    return [f for f in dataclasses.fields(SearchOptions) if not f.metadata.get("python_only")]


def key_of(field: dataclasses.Field) -> str:
    """The name of ``field`` in experiment files (its flag is ``--`` and this, dashed)."""
    return field.metadata["key"] or field.name


def _check_names(given: Iterable[str], known: set[str], owner: str, what: str) -> None:
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{owner} got {name!r}, which is not {what} of a search.{hint} The settings are "
                f"{sorted(known)}."
            )


__all__ = ["OBJECTIVES", "WARM_STARTS", "SearchOptions", "key_of", "settable_fields"]
