"""The recommendation: the best trial within the budget, rebuilt, checked on held-out data and
explained in plain words."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from autoquant._interrupt import raise_if_interrupted
from autoquant._warnings import quietly
from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.engine.data import batch_length
from autoquant.engine.methods import get_method
from autoquant.engine.quantized import QuantizedModel
from autoquant.measure import (
    FINAL_TIMING,
    FloatReference,
    Metrics,
    Scenario,
    Scored,
    example_batch,
    measure,
)
from autoquant.measure.limits import time_limit
from autoquant.measure.machine import busy_warning, conditions_text
from autoquant.measure.uncertainty import resolution_warning
from autoquant.tasks.base import Task
from autoquant.tracking.record import TrialRecord

#: Without an interval (a timing of fewer than 3 rounds, or a record from before intervals),
#: two latencies closer than this share of the faster one count as within measurement noise.
NOISE = 0.03


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
        work_seconds: Of that, the time spent quantizing and measuring: ``trials`` (quantize,
            calibrate, fine-tune, score, time), ``sensitivity`` and ``final_round``; the rest
            is autoquant's own overhead (Optuna, MLflow, bookkeeping).
        records: Every trial of the study.
        finalists: The final round: float, the plain recipes and the best trials, timed head
            to head and scored on the test data (``Finalist.metrics``).
        notes: What to know about how the search ran on this model and data: a calibration
            set shorter than the space asked for, methods the model cannot take, the metric.
        example: One example of the model's inputs (what ``save`` traces or exports it with).
        timing_conditions: What the final round was timed on, and how busy the machine was
            (CPU, kernels, cores, threads, load average, waiting for a core).
        timing_warning: What to know when other work competed for the cores in the final
            round, even after timing it twice ("" otherwise); the explanation ends with it.
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
    notes: list[str] = dataclasses.field(default_factory=list)
    pruning_saved_seconds: float = 0.0
    search_seconds: float = 0.0
    work_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    records: list[TrialRecord] = dataclasses.field(default_factory=list, repr=False)
    finalists: list = dataclasses.field(default_factory=list, repr=False)
    example: Any = dataclasses.field(default=None, repr=False)
    timing_conditions: str = ""
    timing_warning: str = ""

    @property
    def timing_reliable(self) -> bool:
        """False when the final round's speedups were measured on a busy machine."""
        return not self.timing_warning

    def summary(self) -> dict[str, Any]:
        """The recommendation as plain data (JSON-ready): what was chosen, why, and its
        measurements."""
        return {
            "study": self.study_name,
            "label": self.config.label(),
            "config": self.config.to_dict(),
            "feasible": self.feasible,
            "within_budget_on_test": self.within_budget_on_test,
            "budget": str(self.budget),
            "objective": self.objective,
            "trial": self.trial_number,
            "metrics": self.metrics.to_dict(),
            "test_metrics": self.test_metrics.to_dict() if self.test_metrics else None,
            "explanation": self.explanation,
            "notes": list(self.notes),
            "counts": dict(self.counts),
            "timing_conditions": self.timing_conditions,
            "timing_reliable": self.timing_reliable,
            "timing_warning": self.timing_warning,
        }

    @quietly
    def save(self, folder: str | Path, *, plots: bool = True) -> dict[str, Path]:
        """Write the recommendation to ``folder``: the model (``model.pt``, TorchScript, or
        ``model.pt2`` for torch.export), ``state_dict.pt``, ``config.json`` (the config, its
        measurements and the explanation), ``report.md`` and, with ``plots``, the study's
        plots. ``autoquant.load(folder)`` runs the model again.

        Returns:
            What was written: ``model``, ``state_dict``, ``config``, ``report`` and the plots
            (by file stem) -> path.
        """
        from autoquant.engine.export import save
        from autoquant.report.tables import finalist_rows, recommendation_markdown

        out = Path(folder)
        summary = self.summary()
        kept = ("explanation", "metrics", "test_metrics", "feasible", "budget", "study")
        paths = save(self.model, out, self.example, extra={k: summary[k] for k in kept})
        paths["report"] = out / "report.md"
        onnx = json.loads(paths["config"].read_text()).get("onnx", {})
        paths["report"].write_text(
            recommendation_markdown(self, finalist_rows(self)) + onnx_note(onnx)
        )
        if plots:
            from autoquant.report.plots import save_plots

            paths.update({path.stem: path for path in save_plots(self, out)})
        return paths


def onnx_note(onnx: dict) -> str:
    """The report's line on ``model.onnx``: written (and how close to PyTorch), or why not."""
    if "file" in onnx:
        close = onnx.get("max_abs_difference")
        how = f" (largest output difference from PyTorch: {close:.3g})" if close is not None else ""
        return f"\nONNX: `{onnx['file']}`{how}, runs in ONNX Runtime.\n"
    if "error" in onnx:
        return f"\nONNX: no model.onnx: {onnx['error']}\n"
    return ""


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


def faster_than_baseline(metrics: Metrics) -> bool:
    """Whether a model is faster than the baseline beyond the timing's own noise: the 95 %
    interval of its speedup (over the interleaved rounds) lies above 1. Without an interval,
    whether its speedup is above 1."""
    if metrics.speedup_ci_low is None:
        return metrics.speedup > 1
    return metrics.speedup_ci_low > 1


def within_noise(metrics: Metrics, fastest: Metrics) -> bool:
    """Whether ``metrics``' speed cannot be told from ``fastest``'s: their speedup intervals
    overlap (the spread actually measured), or without intervals, within NOISE."""
    if metrics.speedup_ci_high is None or fastest.speedup_ci_low is None:
        return metrics.speedup >= fastest.speedup * (1 - NOISE)
    return metrics.speedup_ci_high >= fastest.speedup_ci_low


def _rank(records: list[TrialRecord], objective: str) -> list[TrialRecord]:
    """Best first by the objective; candidates within noise of the fastest (``within_noise``):
    fewer flips (validation examples whose answer differs from float's), smaller, simpler."""
    if objective == "size":
        return sorted(records, key=lambda r: (round(r.metrics.size_ratio, 3), -r.metrics.speedup))
    if objective == "pareto":
        return sorted(records, key=lambda r: r.metrics.size_ratio / r.metrics.speedup)
    fastest = max(records, key=lambda r: r.metrics.speedup).metrics
    tied = [r for r in records if within_noise(r.metrics, fastest)]
    rest = [r for r in records if r not in tied]
    # within noise: the one that changes fewest of float's answers (the safest on new data),
    # then the smaller, then the simpler, then (all else equal) the faster. Flips decide only
    # where every tied one has a count (a trial from before flips were counted has none).
    counted = all(r.metrics.flips is not None for r in tied)
    tied.sort(
        key=lambda r: (
            r.metrics.flips if counted else 0,
            round(r.metrics.size_ratio, 2),
            get_method(r.config.method).simplicity,  # simpler methods win ties
            -r.metrics.speedup,
        )
    )
    return tied + sorted(rest, key=lambda r: -r.metrics.speedup)


def _describe(config: QuantConfig) -> str:
    if config.method == "fp32":
        if config.compile == "inductor":
            return "the float model compiled with Inductor (weights frozen), no quantization"
        return "the float model (no quantization)"
    method = get_method(config.method)
    if "backend" in method.uses:
        text = f"{config.method} on {config.backend}"
    elif method.engine == "onnxruntime":
        text = f"{config.method} in ONNX Runtime"
    else:
        text = config.method
    if config.method in ("static_int8", "qat_int8", "ort_static_int8"):
        text += (
            f" with a {config.activation_observer} activation observer, "
            f"{config.weight_observer.replace('_', ' ')} weights ({config.qscheme})"
        )
        if not config.reduce_range:
            text += ", full 8-bit activation range"
    if config.keep_float:
        text += (
            f", {len(config.keep_float)} layer(s) kept in float ({', '.join(config.keep_float)})"
        )
    return text


#: How many of the best trials always go to the final round, timed head to head.
FINALISTS = 4
#: One trial's timing is noisier than the final round's: mobilenet_v2's static int8 on x86 and
#: on fbgemm (batch 1) measured 7% apart in their trials, and 5% the other way head to head. So
#: trials within this share of the fastest also go, up to MAX_FINALISTS in all.
TRIAL_NOISE = 0.10
MAX_FINALISTS = 6


def shortlist(feasible: list[TrialRecord], objective: str) -> list[TrialRecord]:
    """The trials of the final round: the FINALISTS best, and with the latency objective up
    to MAX_FINALISTS when more are within TRIAL_NOISE of the fastest."""
    ranked = _rank(feasible, objective)
    if objective != "latency" or not ranked:
        return ranked[:FINALISTS]
    fastest = max(r.metrics.speedup for r in ranked)
    close = [r for r in ranked[FINALISTS:] if r.metrics.speedup >= fastest * (1 - TRIAL_NOISE)]
    return ranked[:FINALISTS] + close[: MAX_FINALISTS - FINALISTS]


@dataclasses.dataclass
class Finalist:
    """A model of the final round: its label, config, trial (if any) and measurements."""

    label: str
    config: QuantConfig
    record: TrialRecord | None = None
    model: QuantizedModel | None = None
    metrics: Metrics | None = None  # held-out accuracy, head-to-head latency
    error: str | None = None


def final_round(
    task: Task,
    finalists: list[Finalist],
    scenario: Scenario,
    time_limit_s: float | None = None,
) -> None:
    """Rebuild every finalist and time them all in one interleaved measurement, so the figures
    they are compared on share the same machine state; accuracy on the test data (held out
    from the search), or the validation data when there is none."""
    data = task.test_data if task.test_data is not None else task.validation_data
    reference = FloatReference.of(task, scenario, data)
    built: list[Finalist] = []
    scores: list[Scored] = []
    for finalist in finalists:
        if finalist.error:
            continue
        try:
            with time_limit(time_limit_s):
                finalist.model = task.build(finalist.config)
                scores.append(reference.score(finalist.model))
            built.append(finalist)
        except Exception as err:  # noqa: BLE001 - a recipe that cannot run is shown as failed
            raise_if_interrupted(err)  # a Ctrl-C that a compile error wrapped
            finalist.model = None
            finalist.error = f"{type(err).__name__}: {str(err).strip()[:200]}"
    models = [f.model for f in built]
    measured = measure(models, reference, timing=FINAL_TIMING, scored=scores)
    if measured and measured[0].timed_busy:
        # other work competed for the cores: time once more, and keep the calmer of the two
        again = measure(models, reference, timing=FINAL_TIMING, scored=scores)
        if again[0].cpu_wait_share < measured[0].cpu_wait_share:
            measured = again
    for finalist, metrics in zip(built, measured, strict=True):
        finalist.metrics = metrics


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
    trial_timeout: float | None = None,
    sensitivity_seconds: float = 0.0,
) -> Recommendation:
    """Pick the recommendation from a study's trials.

    The best few trials within budget (by their validation measurements) go to a final round
    with float and the plain recipes: all rebuilt, timed head to head in one interleaved
    measurement, scored on the held-out test data. The choice among the finalists uses that
    final timing, so the table a person reads is the one the choice was made on.
    """
    from autoquant.recommend.recipes import FINAL_ROUND_RECIPES

    complete = [r for r in records if r.metrics and r.duplicate_of is None]
    feasible = [r for r in complete if r.feasible]
    counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed")}
    tally = (
        f"{len(feasible)} configuration(s) within budget, of {len(complete)} evaluated "
        f"({len(records)} trials: {counts['pruned']} pruned, {counts['failed']} failed)"
    )
    if feasible:
        finalist_records = shortlist(feasible, objective)
    else:
        finalist_records = sorted(complete, key=lambda r: r.violation)[:1]  # best effort
    failed = {
        r.config.canonical().to_json(): r.failure
        for r in records
        if r.state == "failed" and r.config is not None
    }
    finalists = [Finalist("float (fp32)", QuantConfig(method="fp32"))]
    finalists += [
        # a recipe that already failed in the study is not run again
        Finalist(label, config, error=failed.get(config.canonical().to_json()))
        for label, config in FINAL_ROUND_RECIPES.items()
    ]
    finalists += [
        Finalist(f"trial {r.number}: {r.config.label()}", r.config, r) for r in finalist_records
    ]
    final_started = time.perf_counter()
    final_round(task, finalists, scenario, time_limit_s=trial_timeout)
    final_seconds = time.perf_counter() - final_started

    def with_final_speed(finalist: Finalist) -> TrialRecord:
        # the trial's validation accuracy, the final round's head-to-head speed
        m = finalist.record.metrics
        return dataclasses.replace(
            finalist.record,
            metrics=dataclasses.replace(
                m,
                speedup=finalist.metrics.speedup,
                latency_ms=finalist.metrics.latency_ms,
                latency_spread_ms=finalist.metrics.latency_spread_ms,
                float_latency_ms=finalist.metrics.float_latency_ms,
                speedup_ci_low=finalist.metrics.speedup_ci_low,
                speedup_ci_high=finalist.metrics.speedup_ci_high,
            ),
        )

    contenders = [f for f in finalists if f.record is not None and f.metrics is not None]
    by_number = {f.record.number: f for f in contenders}
    float_entry = finalists[0]
    note = ""
    if feasible and contenders:
        candidates = [with_final_speed(f) for f in contenders]
        is_feasible = True
        if objective == "latency":
            # float wins unless a candidate is faster beyond the noise the timing measured
            faster = [r for r in candidates if faster_than_baseline(r.metrics)]
        else:
            faster = candidates
        if faster:
            ranked = _rank(faster, objective)
            chosen = by_number[ranked[0].number]
            note = _safer_than_fastest(ranked, objective)
        else:  # float: its own trial when the study had one (its validation measurements)
            plain = [r for r in candidates if r.config.canonical() == QuantConfig(method="fp32")]
            chosen = by_number[plain[0].number] if plain else float_entry
            note = _nothing_faster(candidates, feasible, scenario)
        if chosen.config.method == "fp32" and chosen.config.compile == "inductor":
            note += (
                " No quantization was needed: compiling the float model loses nothing and was the "
                "fastest within the budget. Deploy it compiled (model.compile.md says how); an "
                "eager copy of it runs at float speed."
            )
    elif contenders:
        is_feasible = False
        chosen = contenders[0]
        note = " No configuration met the budget: this is the best effort (smallest drop)."
    else:
        is_feasible = bool(feasible)
        chosen = float_entry
        note = " No configuration could be evaluated: the float model is the answer."
    chosen.label = f"recommended: {chosen.config.label()}"

    record = chosen.record
    metrics = record.metrics if record else float_entry.metrics
    test_metrics = chosen.metrics if task.test_data is not None else None
    on_test = None if test_metrics is None else budget.violation(test_metrics) <= 0
    unit = "%" if budget.relative else "pt"
    goal = {"latency": "fastest", "size": "smallest", "pareto": "best latency x size"}[objective]
    why = (
        f"It was the {goal} of the {tally}."
        if is_feasible and not note
        else (f"{tally[0].upper()}{tally[1:]}.")
    )
    against = "compiled float" if scenario.baseline == "compiled" else "float"
    if chosen.metrics.speedup_vs_compiled is not None and scenario.baseline == "eager":
        against += f" ({chosen.metrics.speedup_vs_compiled:.2f}x compiled float)"
    elif chosen.metrics.speedup_vs_eager is not None and scenario.baseline == "compiled":
        against += f" ({chosen.metrics.speedup_vs_eager:.2f}x eager float)"
    if chosen.metrics.speedup_vs_onnx_float is not None:
        against += f" ({chosen.metrics.speedup_vs_onnx_float:.2f}x float in ONNX Runtime)"
    explanation = (
        f"Recommended: {_describe(chosen.config)}. In the final head-to-head timing it runs "
        f"{chosen.metrics.speedup:.2f}x{_speedup_note(chosen.metrics)} the speed of {against} at "
        f"{chosen.metrics.size_ratio:.2f}x the size; its validation drop was "
        f"{budget.drop(metrics):.2f}{unit} ({_interval_note(metrics, budget)}; budget "
        f"{budget}){_flips_text(metrics, task)}. {why}{note}"
    )
    if test_metrics is not None:
        explanation += (
            f" On the held-out test data: drop {budget.drop(test_metrics):.2f}{unit} "
            f"({_interval_note(test_metrics, budget)}), "
            f"{'within' if on_test else 'OUTSIDE'} the budget."
        )
    resolution = resolution_note(task, budget, metrics.float_accuracy)
    explanation += f" Note: {resolution}" if resolution else ""
    timed = float_entry.metrics  # every finalist shares the final round's one timing
    busy = busy_warning(scenario.threads, timed.cpu_wait_share, timed.load_average) if timed else ""
    explanation += f" Warning (final round): {busy}" if busy else ""
    return Recommendation(
        config=chosen.config,
        model=chosen.model,
        metrics=metrics,
        test_metrics=test_metrics,
        feasible=is_feasible,
        within_budget_on_test=on_test,
        explanation=explanation,
        budget=budget,
        objective=objective,
        study_name=study_name,
        pareto_front=[_summary(r, budget) for r in pareto_front(records, budget)],
        layer_map=chosen.model.layer_map,
        trial_number=record.number if record else None,
        counts=counts,
        sensitivity=sensitivity or [],
        pruning_saved_seconds=pruning_saved_seconds(records),
        search_seconds=search_seconds,
        work_seconds={
            "trials": sum(r.work_seconds for r in records),
            "sensitivity": sensitivity_seconds,
            "final_round": final_seconds,
        },
        records=records,
        finalists=finalists,
        example=example_batch(task.validation_data, 1, task),
        timing_conditions=conditions_text(
            scenario.threads, timed.cpu_wait_share, timed.load_average
        )
        if timed
        else "",
        timing_warning=busy,
        notes=busy_trials_note(records),
    )


def busy_trials_note(records: list[TrialRecord]) -> list[str]:
    """A note when trials were timed while other work competed for the cores: their speedups
    steered the search, and may have steered it wrong."""
    timed = [r for r in records if r.metrics and r.duplicate_of is None]
    busy = [r for r in timed if r.metrics.timed_busy]
    if not busy:
        return []
    worst = max(busy, key=lambda r: r.metrics.cpu_wait_share)
    return [
        f"{len(busy)} of {len(timed)} trials were timed while other work competed for the "
        f"cores (trial {worst.number}'s threads waited {worst.metrics.cpu_wait_share:.0%} of "
        f"the time for a core): their speedups steered the search and may be off. The final "
        f"round re-times the best of them head to head."
    ]


def _safer_than_fastest(ranked: list[TrialRecord], objective: str) -> str:
    """Why the choice is not the fastest contender, when the flips decided it."""
    if objective != "latency" or len(ranked) < 2:
        return ""
    chosen, fastest = ranked[0], max(ranked, key=lambda r: r.metrics.speedup)
    if fastest is chosen or None in (chosen.metrics.flips, fastest.metrics.flips):
        return ""
    if chosen.metrics.flips >= fastest.metrics.flips:
        return ""
    if fastest.metrics.speedup_ci_low is None or chosen.metrics.speedup_ci_low is None:
        noise = f"within the {NOISE:.0%} timing noise"
    else:
        noise = (
            f"{_speedup_note(fastest.metrics)[1:]}, which overlaps this one's"
            f"{_speedup_note(chosen.metrics)}: the timing cannot tell them apart"
        )
    return (
        f" Trial {fastest.number} ({fastest.config.label()}) timed "
        f"{fastest.metrics.speedup:.2f}x {noise}; this one was "
        f"preferred because it changes fewer of float's validation answers "
        f"({chosen.metrics.flips} against {fastest.metrics.flips}), so it is the safer bet on "
        f"new data."
    )


def _nothing_faster(
    candidates: list[TrialRecord], feasible: list[TrialRecord], scenario: Scenario
) -> str:
    """Why float is recommended: no candidate's speedup interval lies above 1."""
    quantized = [r for r in candidates if r.config.canonical() != QuantConfig(method="fp32")]
    fastest = max(quantized or candidates, key=lambda r: r.metrics.speedup)
    smallest = min(feasible, key=lambda r: r.metrics.size_ratio)
    return (
        f" No quantized configuration was faster than {scenario.reference} beyond the timing "
        f"noise under {scenario.name} (the fastest, {fastest.config.label()}, ran at "
        f"{fastest.metrics.speedup:.2f}x{_speedup_note(fastest.metrics)} in the final round), "
        f"so the float model is recommended. If size matters, {_describe(smallest.config)} is "
        f"the smallest within budget ({smallest.metrics.size_ratio:.2f}x the size, "
        f"{smallest.metrics.speedup:.2f}x the speed)."
    )


def _validation_examples(task: Task) -> int:
    return sum(batch_length(task.adapter.inputs(batch)) for batch in task.validation_data)


def _speedup_note(metrics: Metrics) -> str:
    if metrics.speedup_ci_low is None:
        return ""
    return f" (95 % CI {metrics.speedup_ci_low:.2f}-{metrics.speedup_ci_high:.2f}x)"


def _interval_note(metrics: Metrics, budget: Budget) -> str:
    """The drop's confidence interval (in points, what it is computed in, even under a
    relative budget) and in confidence mode the upper bound that was judged."""
    text = metrics.drop_interval_text()
    if budget.relative and metrics.drop_ci_low is not None:
        text += " of the metric"
    upper = budget.upper_drop(metrics)
    if upper is not None:
        unit = "%" if budget.relative else "pt"
        text += (
            f"; its upper {100 * metrics.drop_upper_confidence:.0f} % bound, which confidence "
            f"mode judges, {upper:.2f}{unit}"
        )
    return text


def _flips_text(metrics: Metrics, task: Task) -> str:
    """The validation answers the choice changes, for its explanation (nothing when not counted)."""
    if metrics.flips is None:
        return ""
    examples = _validation_examples(task)
    return f" and it changes {metrics.flips} of float's {examples} validation answers"


def resolution_note(task: Task, budget: Budget, float_accuracy: float) -> str:
    """``resolution_warning`` for a top-1 task (targets or agreement), "" for other metrics,
    whose drop is not counted in examples."""
    if task.metric.name not in ("top1", "agreement") or task.eval_fn is not None:
        return ""
    scale = float_accuracy if budget.relative else 1.0
    if not scale:
        return ""
    points = budget.max_drop * scale  # a relative budget of the float score, in points
    examples = _validation_examples(task)
    return resolution_warning(examples, points, str(budget), 1 / scale)


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
