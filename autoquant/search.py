"""autoquant.search: an Optuna study over a search space, under an accuracy-drop budget.

For each trial: the space suggests a QuantConfig, the model is quantized (a copy), scored on a
subset of the validation data first (pruned when the drop is already far past the budget),
then fully scored, timed against float and sized. The budget is a constraint
(``trial.set_constraint``), so the sampler learns where the feasible region is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable

import optuna
from torch import nn

from autoquant._validation import check_choice, check_int
from autoquant.apply import apply
from autoquant.budget import Budget
from autoquant.config import QuantConfig
from autoquant.errors import ConfigError
from autoquant.evaluate import (
    Metrics,
    Scenario,
    example_batch,
    get_scenario,
    make_metrics,
    measure_latency,
    score,
    serialized_size,
)
from autoquant.inspect import inspect
from autoquant.layers import quantizable_layers
from autoquant.prior import prior_candidates
from autoquant.recipes import PLAIN_RECIPES
from autoquant.recommend import Recommendation, TrialRecord, recommend
from autoquant.sensitivity import cached_sensitivity
from autoquant.space import SearchSpace, load_space
from autoquant.tasks.base import Task

#: Objective name -> the values Optuna minimizes.
OBJECTIVES = {
    "latency": ("latency_ratio",),
    "size": ("size_ratio",),
    "pareto": ("latency_ratio", "size_ratio", "drop"),
}

# A trial is pruned when its drop on the first quarter of the validation data is beyond
# max(PRUNE_FACTOR x budget, budget + PRUNE_MARGIN points): far enough that noise on a small
# subset cannot explain it.
PRUNE_FACTOR = 3.0
PRUNE_MARGIN = 5.0


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The float model, measured once per study."""

    accuracy: float
    subset_accuracy: float
    size_bytes: int


class Study:
    """One search: the task, budget and space, the float baseline, and the Optuna objective."""

    def __init__(
        self,
        task: Task,
        budget: Budget,
        space: SearchSpace,
        objective: str,
        scenario: Scenario,
        *,
        prune: bool = True,
        seed: int | None = None,
        tracker=None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.task = task
        self.seed = seed
        self.budget = budget
        self.space = space
        self.objective = objective
        self.scenario = scenario
        self.prune = prune
        self.tracker = tracker
        self.log = log
        self.layers = [layer.name for layer in quantizable_layers(task.model)]
        batches = list(task.validation_data)
        self.subset = batches[: max(1, len(batches) // 4)]
        self.example = example_batch(task.validation_data, scenario.batch_size)
        self.report = inspect(task.model, self.example[:1])
        self.sensitive_first: list[str] = []
        self.sensitivity: list[dict] = []
        self.baseline: Baseline | None = None
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- set-up, once per study ------------------------------------------------------------
    def prepare(self, study: optuna.Study) -> None:
        """Measure the float baseline and (ranked mode) the layer sensitivity, or read them
        back from a resumed study."""
        attrs = study.user_attrs
        if "baseline" in attrs:
            self.baseline = Baseline(**attrs["baseline"])
        else:
            self.baseline = Baseline(
                accuracy=score(self.task.model, self.task.validation_data, self.task.metric),
                subset_accuracy=score(self.task.model, self.subset, self.task.metric),
                size_bytes=serialized_size(self.task.model),
            )
            study.set_user_attr("baseline", dataclasses.asdict(self.baseline))
        if self.space.needs_sensitivity:
            if "sensitivity" not in attrs:
                ranked = cached_sensitivity(
                    self.task, _sensitivity_config(self.space), log=self.log
                )
                study.set_user_attr("sensitivity", [dataclasses.asdict(r) for r in ranked])
            self.sensitivity = study.user_attrs["sensitivity"]
            self.sensitive_first = [r["name"] for r in self.sensitivity]
        for trial in study.get_trials(deepcopy=False):
            key = trial.user_attrs.get("config_key")
            if key and trial.state.is_finished() and trial.state != optuna.trial.TrialState.FAIL:
                self._seen.setdefault(key, trial.number)

    def prior_configs(self, top: int = 3) -> list[QuantConfig]:
        """The first ``top`` prior candidates that lie in the space."""
        target = "mobile" if self.space.backends == ("qnnpack",) else "server"
        candidates = prior_candidates(
            self.report, self.budget, target=target, sensitivity=self.sensitivity
        )
        inside = [
            c.config
            for c in candidates
            if self.space.params_for(c.config, self.layers, self.sensitive_first) is not None
        ]
        return inside[:top]

    # -- one trial ---------------------------------------------------------------------------
    def __call__(self, trial: optuna.Trial):
        started = time.time()
        config = self.space.suggest(trial, self.layers, self.sensitive_first).canonical()
        key = config.to_json()
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("config_key", key)
        trial.set_user_attr("label", config.label())
        with self._lock:
            earlier = self._seen.setdefault(key, trial.number)
        try:
            if earlier != trial.number:
                values = self._repeat(trial, earlier)
            else:
                values = self._evaluate(trial, config)
        except optuna.TrialPruned:
            self._log(trial, config, "pruned", started)
            raise
        except Exception as err:
            trial.set_user_attr("failure", f"{type(err).__name__}: {str(err).strip()[:500]}")
            with self._lock:
                if self._seen.get(key) == trial.number:
                    del self._seen[key]  # a failure may be transient: let it be tried again
            self._log(trial, config, "failed", started)
            raise
        self._log(trial, config, "complete", started)
        return values

    def _log(self, trial, config, state: str, started: float) -> None:
        if self.tracker:
            self.tracker.log_trial(trial, config, state=state, started=started)

    def _evaluate(self, trial: optuna.Trial, config: QuantConfig):
        task, baseline = self.task, self.baseline
        started = time.perf_counter()
        quantized = apply(
            task.model, config, task.calibration_data, task.train_data, loss_fn=task.loss_fn
        )
        quantized_at = time.perf_counter()
        trial.set_user_attr("quantize_seconds", quantized_at - started)
        trial.set_user_attr("layer_map", quantized.layer_map)

        if self.prune:
            subset_accuracy = score(quantized, self.subset, task.metric)
            subset_drop = self._drop(baseline.subset_accuracy, subset_accuracy)
            limit = max(PRUNE_FACTOR * self.budget.max_drop, self.budget.max_drop + PRUNE_MARGIN)
            if subset_drop > limit:
                spent = time.perf_counter() - quantized_at
                trial.set_user_attr("pruned_after_seconds", spent)
                trial.set_user_attr("subset_drop", subset_drop)
                trial.set_user_attr(
                    "pruned_reason",
                    f"drop {subset_drop:.2f} on a quarter of the validation data, beyond the "
                    f"pruning limit {limit:.2f} (budget {self.budget})",
                )
                raise optuna.TrialPruned(trial.user_attrs["pruned_reason"])

        metrics = self._measure(quantized)
        trial.set_user_attr("evaluate_seconds", time.perf_counter() - quantized_at)
        violation = self.budget.violation(metrics)
        trial.set_constraint("budget", violation)
        trial.set_user_attr("metrics", metrics.to_dict())
        trial.set_user_attr("violation", violation)
        return self._values(metrics)

    def _measure(self, quantized: nn.Module) -> Metrics:
        task, baseline = self.task, self.baseline
        accuracy = score(quantized, task.validation_data, task.metric)
        timings = measure_latency(
            {"float": task.model, "candidate": quantized}, self.example, self.scenario.threads
        )
        return make_metrics(
            accuracy,
            baseline.accuracy,
            timings,
            serialized_size(quantized),
            baseline.size_bytes,
            self.scenario,
        )

    def _repeat(self, trial: optuna.Trial, earlier_number: int):
        """A configuration already evaluated: reuse its result instead of measuring again."""
        trial.set_user_attr("duplicate_of", earlier_number)
        earlier = _wait_finished(trial.study, earlier_number)
        if earlier.state == optuna.trial.TrialState.PRUNED:
            raise optuna.TrialPruned(f"same configuration as trial {earlier_number} (pruned)")
        if earlier.state != optuna.trial.TrialState.COMPLETE:
            raise RuntimeError(f"same configuration as trial {earlier_number}, which failed")
        for key in ("metrics", "violation", "layer_map"):
            trial.set_user_attr(key, earlier.user_attrs[key])
        trial.set_constraint("budget", earlier.user_attrs["violation"])
        return earlier.values if len(earlier.values) > 1 else earlier.values[0]

    def _drop(self, reference: float, value: float) -> float:
        drop = reference - value
        return 100 * drop / reference if self.budget.relative and reference else 100 * drop

    def _values(self, metrics: Metrics):
        values = {
            "latency_ratio": 1 / metrics.speedup,
            "size_ratio": metrics.size_ratio,
            "drop": self.budget.drop(metrics),
        }
        picked = [values[name] for name in OBJECTIVES[self.objective]]
        return picked if len(picked) > 1 else picked[0]


def _wait_finished(
    study: optuna.Study, number: int, timeout: float = 3600
) -> optuna.trial.FrozenTrial:
    # Under n_jobs > 1 the earlier trial may still be running in another thread.
    deadline = time.monotonic() + timeout
    while True:
        trial = study.get_trials(deepcopy=False)[number]
        if trial.state.is_finished() or time.monotonic() > deadline:
            return trial
        time.sleep(0.5)


def _sensitivity_config(space: SearchSpace) -> QuantConfig:
    from autoquant.sensitivity import reference_config

    return reference_config(space.backends[0])


def _sampler(seed: int | None, n_jobs: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        group=True,
        constant_liar=n_jobs > 1,
        n_startup_trials=8,
    )


def default_study_name(
    task: Task, space: SearchSpace, objective: str, budget: Budget, scenario: Scenario
) -> str:
    return f"{task.name}-{task.model_name}-{space.name}-{objective}-{budget}-{scenario.name}"


def search(
    task: Task,
    budget: Budget | str | float = "1pt",
    space: SearchSpace | str = "default",
    *,
    objective: str = "latency",
    n_trials: int | None = 40,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = 0,
    n_jobs: int = 1,
    scenario: Scenario | str = "bs1-t1",
    prune: bool = True,
    warm_start: str | Iterable[QuantConfig] = "rules",
    tracker=None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Recommendation:
    """Search quantization configs for ``task.model`` and recommend the best within ``budget``.

    Args:
        task: The model, its data and metric (``autoquant.tasks.digits_task`` or your own).
        budget: Largest drop allowed: ``"1pt"`` (points), ``"1%"`` (relative) or a Budget.
        space: A built-in space name (``default``, ``cnn``, ``transformer``, ``mobile``,
            ``quick``), a YAML path or a SearchSpace.
        objective: ``latency`` (fastest), ``size`` (smallest) or ``pareto`` (latency, size
            and drop together).
        n_trials: Trials in the study in total (a resumed study runs only the rest).
        timeout: Seconds after which no new trial starts.
        storage: Optuna storage URL (``sqlite:///autoquant.db``) to keep and resume the study;
            in memory when None.
        study_name: Name of the study in ``storage``; derived from the task when None.
        seed: Sampler seed: the same seed gives the same configurations.
        n_jobs: Trials evaluated in parallel threads.
        scenario: Batch size and threads the latency is measured for (``bs1-t1``, ``bs64-t2``).
        prune: Stop trials whose drop on a quarter of the validation data is already far past
            the budget.
        warm_start: First trials of a new study: ``"rules"`` (the prior candidates of
            ``autoquant.prior``, then the plain recipes), a list of configs (for example from
            ``autoquant.history``; the plain recipes follow) or ``"none"``.
        tracker: Receives every trial and the recommendation (``autoquant.tracking``).
        progress: Show a progress bar.
        log: Where progress messages go.

    Returns:
        The Recommendation: always one, marked infeasible when no trial met the budget.
    """
    budget = Budget.parse(budget)
    space = load_space(space)
    scenario = get_scenario(scenario)
    check_choice("search", "objective", objective, OBJECTIVES)
    if n_trials is None and timeout is None:
        raise ConfigError("search needs 'n_trials' or 'timeout' (or both); both are None.")
    if n_trials is not None:
        check_int("search", "n_trials", n_trials, low=1)
    check_int("search", "n_jobs", n_jobs, low=1)
    study_name = study_name or default_study_name(task, space, objective, budget, scenario)

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says it better
    started = time.perf_counter()
    runner = Study(
        task, budget, space, objective, scenario, prune=prune, seed=seed, tracker=tracker, log=log
    )
    study = open_study(study_name, storage, objective, budget, space, scenario, seed, n_jobs)
    runner.prepare(study)
    if not study.get_trials(deepcopy=False) and warm_start != "none":
        first = runner.prior_configs() if warm_start == "rules" else list(warm_start)
        enqueue(
            study, space, runner.layers, runner.sensitive_first, [*first, *PLAIN_RECIPES.values()]
        )
    if tracker:
        tracker.start_study(study, runner)

    done = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
    remaining = None if n_trials is None else max(0, n_trials - done)
    if done:
        log(f"resuming study {study_name!r}: {done} trial(s) done, {remaining} to run")
    if remaining != 0:
        callbacks = [_ProgressBar(n_trials, done, budget)] if progress else []
        try:
            study.optimize(
                runner,
                n_trials=remaining,
                timeout=timeout,
                n_jobs=n_jobs,
                catch=(Exception,),
                callbacks=callbacks,
            )
        finally:
            for callback in callbacks:
                callback.close()
    records = [TrialRecord.from_trial(t) for t in study.get_trials(deepcopy=False)]
    recommendation = recommend(
        records,
        task=task,
        budget=budget,
        objective=objective,
        scenario=scenario,
        study_name=study_name,
        sensitivity=runner.sensitivity,
        search_seconds=time.perf_counter() - started,
    )
    recommendation.param_importances = _importances(study)
    if tracker:
        tracker.finish_study(study, recommendation, runner.example[:1])
    return recommendation


def enqueue(
    study: optuna.Study,
    space: SearchSpace,
    layers: list[str],
    sensitive_first: list[str],
    configs: Iterable[QuantConfig],
) -> list[QuantConfig]:
    """Enqueue the ``configs`` that lie in ``space`` as the study's first trials, in order.

    The prior candidates go first (where an expert would start), then the plain recipes, so a
    study is never beaten by what a person would try by hand. Returns those enqueued.
    """
    queued, seen = [], set()
    for config in configs:
        params = space.params_for(config, layers, sensitive_first)
        key = json.dumps(params, sort_keys=True)
        if params is not None and key not in seen:
            seen.add(key)
            study.enqueue_trial(params)
            queued.append(config)
    return queued


def _importances(study: optuna.Study) -> dict[str, float]:
    """fANOVA importances of the searched choices (first objective); empty when too few trials
    or conditional choices leave nothing common to compare."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "few trials per regime" is expected in a small study
            return optuna.importance.get_param_importances(study, target=lambda t: t.values[0])
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def open_study(
    study_name, storage, objective, budget, space, scenario, seed, n_jobs
) -> optuna.Study:
    """Create the study, or load it when it exists with the same budget, space and objective."""
    directions = ["minimize"] * len(OBJECTIVES[objective])
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=_sampler(seed, n_jobs),
        directions=directions,
        load_if_exists=True,
    )
    settings = {
        "objective": objective,
        "budget": str(budget),
        "space": space.to_dict(),
        "scenario": scenario.name,
    }
    settings = json.loads(json.dumps(settings))  # as the storage gives it back: lists, not tuples
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
    elif stored != settings:
        differs = sorted(k for k in settings if stored.get(k) != settings[k])
        raise ConfigError(
            f"The study {study_name!r} in {storage} was started with a different {differs}; "
            f"resume it with the same settings, or choose a new study name."
        )
    return study


class _ProgressBar:
    """A tqdm bar over trials showing the best feasible result so far."""

    def __init__(self, total: int | None, initial: int, budget: Budget) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="trial", desc="search", leave=True)
        self.budget = budget
        self.best: tuple[float, float] | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        metrics = trial.user_attrs.get("metrics")
        if metrics and trial.user_attrs.get("violation", math.inf) <= 0:
            if self.best is None or metrics["speedup"] > self.best[0]:
                self.best = (metrics["speedup"], metrics["drop_points"])
        if self.best:
            self.bar.set_postfix_str(
                f"best feasible: {self.best[0]:.2f}x, drop {self.best[1]:.2f}pt"
            )
        else:
            self.bar.set_postfix_str(f"no config within {self.budget} yet")
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


__all__ = ["OBJECTIVES", "open_study", "search"]
