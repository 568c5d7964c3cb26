"""The record of a trial: the one place the names of what a trial and its study store are
declared, each with what it holds: in Optuna's user attributes, and in MLflow's runs (tags,
metrics, parameters).

Every read and write goes through ``attributes`` (a read-only view) and ``write``, which refuse
a name not declared here: a misspelt key fails at once instead of reading as missing.
``TrialRecord`` is the finished trial as the recommender, the report and MLflow read it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import optuna

from autoquant.engine.config import QuantConfig
from autoquant.measure import Metrics
from autoquant.measure.machine import is_busy

#: What a trial stores, by name.
TRIAL_ATTRIBUTES = {
    "config": "the QuantConfig evaluated, as a dict",
    "config_key": "its canonical JSON: a configuration is measured once per study",
    "label": "its short label",
    "compile_skipped": "why compile: inductor could not apply to its method",
    "quantize_seconds": "time spent quantizing, calibrating, fine-tuning",
    "layer_map": "per layer: quantized or float, and how",
    "metrics": "its Metrics on the validation data, as a dict",
    "violation": "its drop beyond the budget (<= 0 within it), in the budget's unit",
    "evaluate_seconds": "time spent scoring, timing and sizing",
    "subset_drop": "its drop on the pruning subset, when pruned",
    "pruned_reason": "why it was pruned",
    "pruned_after_seconds": "time spent before it was pruned",
    "failure": "why it failed",
    "failed_after_seconds": "time spent before it failed",
    "duplicate_of": "the trial that measured the same configuration first",
    "repair_of": "the trial whose broken budget it tries to repair (the recovery ladder)",
    "step_of": "the trial it is a local step from",
}

#: What a study stores, by name.
STUDY_ATTRIBUTES = {
    "baseline": "the float model measured once (accuracy, pruning-subset accuracy, size)",
    "sensitivity": "per-layer sensitivity, when the space ranks layers",
    "n_trials": "the trials the study holds in total",
    "experiment": "the settings that rebuild its task (for workers)",
    "settings": "budget, space, objective, scenario and the rest, for workers and resuming",
    "repaired": "the trials the recovery ladder already repaired",
}


#: The tags autoquant sets on MLflow runs, by name; the tag is ``autoquant.<name>``.
RUN_TAGS = {
    "role": "'study' on a study's parent run, 'trial' on each trial's child run",
    "study": "the study's name (parent)",
    "trial": "the trial's number (child)",
    "state": "complete, pruned, failed or killed (child)",
    "feasible": "'true' when within the budget (child: the trial; parent: the recommendation)",
    "reason": "why the trial failed or was pruned (child)",
    "duplicate_of": "the trial that measured the same configuration first (child)",
    "repair_of": "the trial whose broken budget it tries to repair (child)",
    "step_of": "the trial it is a local step from (child)",
    "timed_against": "the float it was timed against: eager or compiled (child)",
    "compile_skipped": "why compile: inductor could not apply to its method (child)",
    "recommendation": "the recommended configuration's label (parent)",
    "explanation": "why it was recommended (parent)",
    "model_uri": "where the recommended model was logged (parent)",
    "model_not_logged": "why the recommended model could not be logged as a model (parent)",
    "onnx_model_uri": "where the recommended model's ONNX export was logged, MLflow's onnx "
    "flavor, beside a PyTorch model (parent)",
    "onnx_model_not_logged": "why the ONNX export could not be logged (parent)",
    "resolution": "the warning when the budget is finer than the validation data resolves (parent)",
    "timing": "the conditions the final round was timed under: CPU, kernels, cores, threads, "
    "load, waiting for a core (parent)",
    "busy": "other work competed for the cores while it was timed: 'true' (child), the "
    "warning (parent)",
}

#: The metrics of a trial's child run, by name: its Metrics on the validation data, then what
#: the trial took. The parent run's are the recommendation's Metrics as ``recommended_<name>``
#: (on validation) and ``test_<name>`` (the final round), ``trials_<state>`` (counts),
#: ``search_seconds`` and ``pruning_saved_seconds``.
TRIAL_RUN_METRICS = {
    "accuracy": "its score on the validation data",
    "drop_points": "float's score minus its score, in points",
    "drop_relative": "that drop as a fraction of float's score",
    "latency_ms": "its latency at the scenario",
    "latency_spread_ms": "the spread of its timed repeats",
    "float_latency_ms": "float's latency in the same interleaved run",
    "speedup": "float's latency over its latency",
    "speedup_ci_low": "the lower bound of its speedup's 95 % interval (over timing rounds)",
    "speedup_ci_high": "the upper bound of its speedup's 95 % interval",
    "size_bytes": "its serialized size",
    "size_ratio": "its size over float's",
    "compile_seconds": "time spent compiling it (0 when not compiled)",
    "constraint_violation": "its drop beyond the budget (<= 0 within it)",
    "drop_ci_low": "the lower bound of its drop's 95 % confidence interval",
    "drop_ci_high": "the upper bound of its drop's 95 % confidence interval",
    "mcnemar_p": "McNemar's exact p-value on the top-1 answers it changed",
    "speedup_vs_eager": "its speedup against eager float (when compiled)",
    "speedup_vs_compiled": "its speedup against compiled float (when compiled)",
    "speedup_vs_onnx_float": "its speedup against float in ONNX Runtime (ONNX Runtime methods)",
    "flips": "the examples whose answer differs from float's (class outputs)",
    "output_sqnr_db": "how closely its outputs follow float's (finite values only)",
    "quantize_seconds": "time spent quantizing, calibrating, fine-tuning",
    "evaluate_seconds": "time spent scoring, timing and sizing",
    "subset_drop": "its drop on the pruning subset, when pruned",
    "cpu_wait_share": "the share of time its timing's threads waited for a core (busy machine)",
    "load_average": "the one-minute load average when it was timed",
}

#: The parameters of a study's parent run besides the machine's; ``feature.<name>`` params hold
#: the model's features, which the learned ranker reads.
STUDY_RUN_PARAMS = (
    "task", "model", "budget", "space", "objective", "scenario", "seed", "float_accuracy",
    "metric", "label_free",
)  # fmt: skip
FEATURE_PARAM_PREFIX = "feature."


def run_tag(name: str) -> str:
    """The MLflow tag of the declared ``name`` (``autoquant.<name>``)."""
    _check(RUN_TAGS, name)
    return f"autoquant.{name}"


def run_tags(**values: Any) -> dict[str, str]:
    """``values`` as MLflow tags (``autoquant.<name>``: str), names checked."""
    return {run_tag(name): str(value) for name, value in values.items()}


def tagged(**values: str) -> str:
    """An MLflow search filter for runs with these tag values."""
    return " and ".join(f"tags.`{run_tag(name)}` = '{value}'" for name, value in values.items())


def run_metric(name: str) -> str:
    """The name of a trial run's metric, checked against ``TRIAL_RUN_METRICS``."""
    _check(TRIAL_RUN_METRICS, name)
    return name


def trial_run_tags(number: int, attrs: Mapping[str, Any], state: str, reason: str | None):
    """The tags of a finished trial's child run, from its attributes (``attributes``)."""
    metrics = attrs.get("metrics")
    violation = attrs.get("violation")
    tags = {"role": "trial", "trial": number, "state": state}
    if metrics is not None and violation is not None:
        tags["feasible"] = str(violation <= 0).lower()
    reason = reason or attrs.get("failure") or attrs.get("pruned_reason")
    if reason:
        tags["reason"] = reason[:5000]
    for name in ("duplicate_of", "repair_of", "step_of", "compile_skipped"):
        if name in attrs:
            tags[name] = attrs[name]
    if metrics:
        tags["timed_against"] = metrics.get("reference", "float")
        if is_busy(metrics.get("cpu_wait_share")):
            tags["busy"] = "true"
    return run_tags(**tags)


def trial_run_metrics(attrs: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of a finished trial's child run, from its attributes; those a trial did
    not reach (pruned, failed, killed between writes) are left out."""
    metrics = dict(attrs.get("metrics") or {})
    values: dict[str, Any] = {}
    if metrics:
        values = {name: metrics.get(name) for name in TRIAL_RUN_METRICS if name in metrics}
        values.setdefault("compile_seconds", 0.0)
        values["constraint_violation"] = attrs.get("violation")
        # infinite for outputs equal to float's, which MLflow cannot store as a number
        sqnr = values.get("output_sqnr_db")
        if sqnr is not None and not math.isfinite(sqnr):
            del values["output_sqnr_db"]
    for name in ("quantize_seconds", "evaluate_seconds", "subset_drop"):
        if name in attrs:
            values[name] = attrs[name]
    return {run_metric(k): float(v) for k, v in values.items() if v is not None}


class UnknownAttribute(ValueError):
    """A user attribute name that this module does not declare."""


def _declared(owner: Any) -> dict[str, str]:
    return STUDY_ATTRIBUTES if isinstance(owner, optuna.Study) else TRIAL_ATTRIBUTES


def _check(declared: dict[str, str], name: str) -> None:
    if name not in declared:
        raise UnknownAttribute(
            f"{name!r} is not a declared attribute; declare it in autoquant.tracking.record "
            f"(declared: {sorted(declared)})."
        )


class Attributes(Mapping):
    """The user attributes of a trial or study, read by declared names only."""

    def __init__(self, owner: Any) -> None:
        self._declared = _declared(owner)
        self._values = owner.user_attrs

    def __getitem__(self, name: str) -> Any:
        _check(self._declared, name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        _check(self._declared, name)
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def attributes(owner: Any) -> Attributes:
    """A read-only view of ``owner``'s (a trial's or a study's) user attributes."""
    return Attributes(owner)


def write(owner: Any, **values: Any) -> None:
    """Store ``values`` as ``owner``'s user attributes, by declared names."""
    declared = _declared(owner)
    for name, value in values.items():
        _check(declared, name)
        owner.set_user_attr(name, value)


def declared(**values: Any) -> dict[str, Any]:
    """``values`` as trial attributes to enqueue a trial with, names checked."""
    for name in values:
        _check(TRIAL_ATTRIBUTES, name)
    return values


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """What one finished trial left in the study."""

    number: int
    state: str  # complete, pruned, failed, running
    config: QuantConfig | None
    metrics: Metrics | None
    violation: float | None
    failure: str | None = None
    duplicate_of: int | None = None
    evaluate_seconds: float | None = None  # full scoring, timing and sizing
    pruned_after_seconds: float | None = None  # time spent before the trial was pruned
    quantize_seconds: float | None = None  # quantizing, calibrating, fine-tuning
    failed_after_seconds: float | None = None  # time spent before the trial failed
    repair_of: int | None = None  # the trial whose broken budget this one tried to repair

    @property
    def work_seconds(self) -> float:
        """Time spent quantizing and evaluating (nothing for a repeated configuration)."""
        return (
            (self.quantize_seconds or 0.0)
            + (self.evaluate_seconds or 0.0)
            + (self.pruned_after_seconds or 0.0)
            + (self.failed_after_seconds or 0.0)
        )

    @property
    def feasible(self) -> bool:
        return self.violation is not None and self.violation <= 0

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        attrs = attributes(trial)
        state = {
            optuna.trial.TrialState.COMPLETE: "complete",
            optuna.trial.TrialState.PRUNED: "pruned",
            optuna.trial.TrialState.FAIL: "failed",
        }.get(trial.state, "running")
        config = QuantConfig.from_dict(attrs["config"]) if "config" in attrs else None
        metrics = (
            Metrics(**attrs["metrics"]) if state == "complete" and "metrics" in attrs else None
        )
        return cls(
            number=trial.number,
            state=state,
            config=config,
            metrics=metrics,
            violation=attrs.get("violation") if metrics else None,
            failure=attrs.get("failure") or attrs.get("pruned_reason"),
            duplicate_of=attrs.get("duplicate_of"),
            evaluate_seconds=attrs.get("evaluate_seconds"),
            pruned_after_seconds=attrs.get("pruned_after_seconds"),
            quantize_seconds=attrs.get("quantize_seconds") if config else None,
            repair_of=attrs.get("repair_of"),
            failed_after_seconds=attrs.get("failed_after_seconds"),
        )
