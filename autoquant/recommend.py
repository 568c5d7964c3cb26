"""The recommendation: the best trial within the budget, rebuilt, checked on held-out data and
explained in plain words."""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from autoquant.apply import apply
from autoquant.budget import Budget
from autoquant.config import QuantConfig
from autoquant.evaluate import Metrics, Scenario, evaluate
from autoquant.quantized import QuantizedModel
from autoquant.tasks.base import Task

#: Simpler methods win ties: fewer moving parts to deploy and to trust.
SIMPLICITY = {"fp32": 0, "dynamic_fp16": 1, "dynamic_int8": 2, "static_int8": 3, "qat_int8": 4}

#: Two latencies closer than this share of the faster one are within measurement noise.
NOISE = 0.03


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

    @property
    def feasible(self) -> bool:
        return self.violation is not None and self.violation <= 0

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
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
        )


@dataclasses.dataclass
class Recommendation:
    """What autoquant recommends, with the evidence.

    Attributes:
        config: The recommended QuantConfig (``autoquant.apply`` rebuilds the model from it).
        model: The quantized model, rebuilt from ``config``.
        metrics: Its measurements on the validation data, from its trial.
        test_metrics: Its measurements on the held-out test data (None without test data).
        feasible: Whether it met the budget on the validation data.
        within_budget_on_test: Whether it also met the budget on the test data.
        explanation: Why this one, in plain words.
        pareto_front: Trials not beaten on latency, size and drop at once.
        layer_map: Per layer: quantized or float, and how.
        trial_number: The trial it came from (None when float was chosen without a trial).
        counts: Trials per state (complete, pruned, failed).
        sensitivity: Per-layer sensitivity, when the study measured it.
        param_importances: How much each searched choice mattered to the objective.
        pruning_saved_seconds: Evaluation time the pruned trials did not spend (estimated).
        search_seconds: Wall time of the search.
    """

    config: QuantConfig
    model: QuantizedModel
    metrics: Metrics
    test_metrics: Metrics | None
    feasible: bool
    within_budget_on_test: bool | None
    explanation: str
    budget: Budget
    objective: str
    study_name: str
    pareto_front: list[dict[str, Any]]
    layer_map: dict
    trial_number: int | None
    counts: dict[str, int]
    sensitivity: list[dict] = dataclasses.field(default_factory=list)
    param_importances: dict[str, float] = dataclasses.field(default_factory=dict)
    pruning_saved_seconds: float = 0.0
    search_seconds: float = 0.0
    records: list[TrialRecord] = dataclasses.field(default_factory=list, repr=False)


def pareto_front(records: list[TrialRecord], budget: Budget) -> list[TrialRecord]:
    """Complete trials that no other trial beats on latency, size and drop together."""
    done = [r for r in records if r.metrics and r.duplicate_of is None]

    def key(r):
        return (1 / r.metrics.speedup, r.metrics.size_ratio, budget.drop(r.metrics))

    front = []
    for r in done:
        kr = key(r)
        dominated = any(
            all(a <= b for a, b in zip(key(o), kr, strict=True)) and key(o) != kr for o in done
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: -r.metrics.speedup)


def _rank(records: list[TrialRecord], objective: str) -> list[TrialRecord]:
    """Best first by the objective; candidates within noise of each other: smaller, simpler."""
    if objective == "size":
        return sorted(records, key=lambda r: (round(r.metrics.size_ratio, 3), -r.metrics.speedup))
    if objective == "pareto":
        return sorted(records, key=lambda r: r.metrics.size_ratio / r.metrics.speedup)
    fastest = max(r.metrics.speedup for r in records)
    tied = [r for r in records if r.metrics.speedup >= fastest * (1 - NOISE)]
    rest = [r for r in records if r not in tied]
    tied.sort(key=lambda r: (round(r.metrics.size_ratio, 2), SIMPLICITY.get(r.config.method, 9)))
    return tied + sorted(rest, key=lambda r: -r.metrics.speedup)


def _describe(config: QuantConfig) -> str:
    if config.method == "fp32":
        return "the float model (no quantization)"
    text = f"{config.method} on {config.backend}"
    if config.method in ("static_int8", "qat_int8"):
        text += (
            f" with a {config.activation_observer} activation observer, "
            f"{config.weight_observer.replace('_', ' ')} weights ({config.qscheme})"
        )
    if config.keep_float:
        text += (
            f", {len(config.keep_float)} layer(s) kept in float ({', '.join(config.keep_float)})"
        )
    return text


def recommend(
    records: list[TrialRecord],
    *,
    task: Task,
    budget: Budget,
    objective: str,
    scenario: Scenario,
    study_name: str,
    sensitivity: list[dict] | None = None,
    search_seconds: float = 0.0,
) -> Recommendation:
    """Pick the recommendation from a study's trials, rebuild it and check it on test data."""
    complete = [r for r in records if r.metrics and r.duplicate_of is None]
    feasible = [r for r in complete if r.feasible]
    counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed")}
    tally = (
        f"{len(feasible)} configuration(s) within budget, of {len(complete)} evaluated "
        f"({len(records)} trials: {counts['pruned']} pruned, {counts['failed']} failed)"
    )
    note = ""
    if feasible:
        ranked = _rank(feasible, objective)
        chosen = ranked[0]
        is_feasible = True
        if objective == "latency" and chosen.metrics.speedup < 1 and chosen.config.method != "fp32":
            smallest = min(feasible, key=lambda r: r.metrics.size_ratio)
            note = (
                f" No quantized configuration was faster than float under {scenario.name} (the "
                f"fastest ran at {chosen.metrics.speedup:.2f}x), so the float model is "
                f"recommended. If size matters, {_describe(smallest.config)} is the smallest "
                f"within budget ({smallest.metrics.size_ratio:.2f}x the size, "
                f"{smallest.metrics.speedup:.2f}x the speed)."
            )
            chosen = next((r for r in feasible if r.config.method == "fp32"), None)
    else:
        is_feasible = False
        chosen = min(complete, key=lambda r: r.violation) if complete else None
        note = " No configuration met the budget: this is the best effort (smallest drop)."

    config = chosen.config if chosen else QuantConfig(method="fp32")
    model = apply(task.model, config, task.calibration_data, task.train_data, loss_fn=task.loss_fn)
    metrics = (
        chosen.metrics
        if chosen
        else evaluate(model, task.model, task.validation_data, task.metric, scenario)
    )
    test_metrics = (
        evaluate(model, task.model, task.test_data, task.metric, scenario)
        if task.test_data is not None
        else None
    )
    on_test = None if test_metrics is None else budget.violation(test_metrics) <= 0

    if is_feasible and not note:
        goal = {"latency": "fastest", "size": "smallest", "pareto": "best latency x size"}[
            objective
        ]
        why = f"It was the {goal} of the {tally}."
    else:
        why = f"{tally[0].upper()}{tally[1:]}."
    explanation = (
        f"Recommended: {_describe(config)}. On the validation data it runs "
        f"{metrics.speedup:.2f}x the speed of float at {metrics.size_ratio:.2f}x the size, "
        f"for a drop of {budget.drop(metrics):.2f}{'%' if budget.relative else 'pt'} "
        f"(budget {budget}). {why}{note}"
    )
    if test_metrics is not None:
        explanation += (
            f" On the held-out test data: {test_metrics.speedup:.2f}x, drop "
            f"{budget.drop(test_metrics):.2f}{'%' if budget.relative else 'pt'}, "
            f"{'within' if on_test else 'OUTSIDE'} the budget."
        )
    return Recommendation(
        config=config,
        model=model,
        metrics=metrics,
        test_metrics=test_metrics,
        feasible=is_feasible,
        within_budget_on_test=on_test,
        explanation=explanation,
        budget=budget,
        objective=objective,
        study_name=study_name,
        pareto_front=[_summary(r, budget) for r in pareto_front(records, budget)],
        layer_map=model.layer_map,
        trial_number=chosen.number if chosen else None,
        counts=counts,
        sensitivity=sensitivity or [],
        pruning_saved_seconds=pruning_saved_seconds(records),
        search_seconds=search_seconds,
        records=records,
    )


def pruning_saved_seconds(records: list[TrialRecord]) -> float:
    """Evaluation time pruning saved: each pruned trial would have cost the mean full
    evaluation of the complete trials, and spent only its subset scoring."""
    full = [r.evaluate_seconds for r in records if r.evaluate_seconds is not None]
    pruned = [r.pruned_after_seconds for r in records if r.pruned_after_seconds is not None]
    if not full or not pruned:
        return 0.0
    return max(0.0, len(pruned) * sum(full) / len(full) - sum(pruned))


def _summary(record: TrialRecord, budget: Budget) -> dict[str, Any]:
    return {
        "trial": record.number,
        "config": record.config.label(),
        "speedup": record.metrics.speedup,
        "size_ratio": record.metrics.size_ratio,
        "drop": budget.drop(record.metrics),
        "feasible": record.feasible,
    }
