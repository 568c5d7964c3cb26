"""The search (``autoquant.search``): an Optuna study under an accuracy-drop budget.

For each trial: the space suggests a QuantConfig, the model is quantized (a copy), scored on a
subset of the validation data first (pruned when the drop is already far past the budget),
then fully scored, timed against float and sized (``autoquant.trial``). The budget is a
constraint (``trial.set_constraint``), so the sampler learns where the feasible region is.

A study in a database storage keeps a heartbeat: when a process dies mid-trial, the next
process to open the study marks that trial failed (Optuna's stale-trial handling), and the
study goes on from where it was. Several processes, on one machine or many, can work on the
same study through that storage (``autoquant worker``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import optuna

from autoquant._interrupt import interrupted, watching
from autoquant._warnings import quietly
from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.engine.data import calibration_note, first_examples
from autoquant.engine.layers import quantizable_layers
from autoquant.engine.methods import get_method
from autoquant.errors import ConfigError, UnsupportedError
from autoquant.measure import (
    FloatReference,
    Metrics,
    example_batch,
    score_and_answers,
    serialized_size,
)
from autoquant.measure.inspect import inspect
from autoquant.measure.limits import time_limit
from autoquant.measure.machine import busy_warning
from autoquant.recommend.prior import prior_candidates
from autoquant.recommend.recipes import COMPILED_FLOAT, PLAIN_RECIPES
from autoquant.recommend.recommendation import (
    Recommendation,
    TrialRecord,
    recommend,
    resolution_note,
)
from autoquant.study.explore import LocalSteps, StopWhenRepeating, twin_within_budget
from autoquant.study.options import OBJECTIVES, SearchOptions
from autoquant.study.repair import RecoveryLadder
from autoquant.study.sensitivity import cached_sensitivity
from autoquant.study.space import SearchSpace
from autoquant.study.trial import Baseline, Evaluator, IsolatedEvaluator
from autoquant.tasks.base import Task
from autoquant.tracking.record import attributes, write

#: Seconds between heartbeats of a running trial, and the silence after which it is stale.
HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20

#: How a history warm start announces the studies it learned from, and the configurations it
#: adds to the rules' (after each), in the study's log.
HISTORY_STUDIES = "Warm start learned from past studies: "
HISTORY_PICKS = "History's picks, after each of the rules': "

#: The failure recorded for a trial that a Ctrl-C stopped (not counted as finished).
INTERRUPTED = "interrupted (Ctrl-C)"

#: Failures of one method on one backend, with one error, after which it is not tried again.
REPEATED_FAILURES = 2

FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


class Objective:
    """The Optuna objective of one search: task, budget, space, float baseline, and the trial."""

    def __init__(
        self,
        task: Task,
        options: SearchOptions,
        *,
        tracker=None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.task = task
        self.options = options
        self.seed = options.seed
        self.budget = options.budget
        self.objective = options.objective
        self.scenario = options.scenario
        self.prune = options.prune
        self.trial_timeout = options.trial_timeout
        self.isolate = options.isolate
        self.tracker = tracker
        self.log = log
        space = options.space
        task.check()  # a model that cannot take the data is refused before any study exists
        if self.isolate:
            _check_picklable(task)
        # float's score and answers, to count the ones each trial changes; measured before the
        # study is created, so a metric that fails leaves nothing behind (recomputed when
        # resumed: one pass of the float model, not a class per example in the storage)
        self.float_accuracy, self.float_answers = score_and_answers(
            task.model, task.validation_data, task
        )
        self.layers = [layer.name for layer in quantizable_layers(task.model)]
        batches = list(task.validation_data)
        self.subset = batches[: max(1, len(batches) // 4)]
        self.example = example_batch(task.validation_data, self.scenario.batch_size, task)
        self.report = inspect(task.model, first_examples(self.example), space.methods)
        # What the user should know about how the search ran on this model and data: the
        # methods left out first (_capturable), then the metric, then calibration (prepare).
        self.notes: list[str] = []
        self.space = self._capturable(space)
        self.sensitive_first: list[str] = []
        self.sensitivity: list[dict] = []
        self.sensitivity_seconds = 0.0
        if task.label_free:
            self.notes.append(
                f"Label-free: the metric {task.metric.name!r} compares each candidate with the "
                f"float model's own outputs on the same examples (the data must come in the same "
                f"order on every pass)."
            )
        # a budget finer than the validation data can resolve, said before any trial runs
        self.resolution = resolution_note(task, self.budget, self.float_accuracy)
        if self.resolution:
            self.log(f"warning: {self.resolution}")
        self.baseline: Baseline | None = None
        self.evaluate = None
        self._seen: dict[str, int] = {}
        self._said_busy = False
        self._lock = threading.Lock()

    def _capturable(self, space: SearchSpace) -> SearchSpace:
        """``space`` without the methods the model cannot take (probed once by ``inspect``:
        torch.fx tracing, torch.export capture, the layers a method needs; or training data
        the task lacks), each noted with its reason, so no trial is spent on a method that can
        only fail."""
        left_out = {
            m: self.report.unavailable[m] for m in space.methods if m in self.report.unavailable
        }
        if self.task.train_data is None:
            for m in space.methods:
                if get_method(m).needs_training and m not in left_out:
                    left_out[m] = "it fine-tunes the model and the task has no train_data"
        for method, reason in left_out.items():
            note = f"{method} is left out of the search: {reason}."
            self.notes.append(note)
            self.log(f"note: {note}")
        kept = tuple(m for m in space.methods if m not in left_out)
        if not kept:
            raise UnsupportedError(
                f"No method of the space {space.name!r} can take this model: "
                + " ".join(self.notes)
            )
        return dataclasses.replace(space, methods=kept) if left_out else space

    # -- set-up, once per study ------------------------------------------------------------
    def prepare(self, study: optuna.Study) -> None:
        """Measure the float baseline and (ranked mode) the layer sensitivity, or read them
        back from a resumed study."""
        self._check_data()
        attrs = attributes(study)
        accuracy, float_answers = self.float_accuracy, self.float_answers
        # float's answers on the pruning subset, for the interval of a trial's drop there
        # (recomputed when resumed, as float's answers are)
        subset_accuracy, subset_answers = (
            (accuracy, None)
            if self.task.eval_fn
            else score_and_answers(self.task.model, self.subset, self.task)
        )
        if "baseline" in attrs:
            self.baseline = Baseline(**attrs["baseline"])
        else:
            self.baseline = Baseline(
                accuracy=accuracy,
                subset_accuracy=subset_accuracy,
                size_bytes=serialized_size(self.task.model),
            )
            write(study, baseline=dataclasses.asdict(self.baseline))
        if self.space.needs_sensitivity:
            if "sensitivity" not in attrs:
                started = time.perf_counter()
                ranked = cached_sensitivity(
                    self.task, _sensitivity_config(self.space), log=self.log
                )
                self.sensitivity_seconds = time.perf_counter() - started
                write(study, sensitivity=[dataclasses.asdict(r) for r in ranked])
            self.sensitivity = attributes(study)["sensitivity"]
            self.sensitive_first = [r["name"] for r in self.sensitivity]
        reference = FloatReference.of(
            self.task,
            self.scenario,
            accuracy=self.baseline.accuracy,
            answers=float_answers,
            size_bytes=self.baseline.size_bytes,
            example=self.example,
            confidence=self.options.confidence,
        )
        evaluator = Evaluator(
            self.task,
            self.budget,
            self.baseline,
            self.subset,
            reference,
            self.prune,
            subset_answers=subset_answers,
        )
        self.evaluate = (
            IsolatedEvaluator(evaluator, self.trial_timeout) if self.isolate else (evaluator)
        )
        self._remember(study)

    def _check_data(self) -> None:
        """Note, before any trial, calibration data shorter than the space asks for (the
        observers then see all there is) or too small to calibrate on with confidence."""
        if any("calibration_batches" in get_method(m).uses for m in self.space.methods):
            note = calibration_note(
                self.task.calibration_data, max(self.space.calibration_batches), self.task.adapter
            )
            if note and note not in self.notes:
                self.notes.append(note)
                self.log(f"warning: {note}")

    def _remember(self, study: optuna.Study) -> None:
        for trial in study.get_trials(deepcopy=False, states=FINISHED[:2]):
            key = attributes(trial).get("config_key")
            if key:
                self._seen.setdefault(key, trial.number)

    def close(self) -> None:
        if isinstance(self.evaluate, IsolatedEvaluator):
            self.evaluate.close()

    def prior_configs(self, top: int = 3) -> list[QuantConfig]:
        """The first ``top`` prior candidates that lie in the space."""
        target = "mobile" if self.space.backends == ("qnnpack",) else "server"
        candidates = prior_candidates(
            self.report,
            self.budget,
            target=target,
            sensitivity=self.sensitivity,
            batch_size=self.scenario.batch_size,
        )
        inside = [
            c.config
            for c in candidates
            if self.space.params_for(c.config, self.layers, self.sensitive_first) is not None
        ]
        return inside[:top]

    def history_configs(self, tracking_uri: str | None, top: int = 3) -> list[QuantConfig]:
        """The rules' candidates alternating with those the history ranks best
        (``autoquant.study.history.alternate``), or the rules alone when the store holds too little
        history."""
        from autoquant.study.history import alternate, history_candidates

        rules = self.prior_configs(top)
        ranked, studies = history_candidates(
            self.report.features,
            self.space,
            self.budget,
            tracking_uri=tracking_uri,
            exclude_model=self.task.model_name,
            scenario=self.scenario.name,
            top=top,
            exclude=rules,
        )
        if not studies:
            self.log(
                "Too little history in the MLflow store (fewer than 5 trials): warm start "
                "from the rules."
            )
            return rules
        self.log(f"{HISTORY_STUDIES}{', '.join(studies)}")
        picks = [config for config, _, _ in ranked]
        self.log(f"{HISTORY_PICKS}{', '.join(config.label() for config in picks)}")
        return alternate(rules, picks)

    # -- one trial ---------------------------------------------------------------------------
    def __call__(self, trial: optuna.Trial):
        started = time.time()
        config = self.space.suggest(trial, self.layers, self.sensitive_first)
        config = config.for_layers(self.layers)  # every layer kept in float: that is float
        key = config.to_json()
        write(trial, config=config.to_dict())
        write(trial, config_key=key)
        write(trial, label=config.label())
        skipped = self.space.compile_skipped(config.method)
        if skipped:
            write(trial, compile_skipped=skipped)
        with self._lock:
            if key not in self._seen:
                self._remember(trial.study)  # other workers may have measured it meanwhile
            earlier = self._seen.setdefault(key, trial.number)
        try:
            if earlier != trial.number:
                values = self._repeat(trial, earlier)
            else:
                self._skip_if_twin_holds(trial, config)
                self._skip_if_failing_the_same_way(trial, config)
                values = self._evaluate(trial, config)
        except optuna.TrialPruned:
            self._log(trial, config, "pruned", started)
            raise
        except KeyboardInterrupt:
            self._forget(trial, key, INTERRUPTED)
            raise
        except Exception as err:
            if interrupted():
                # Ctrl-C during torch.compile comes back wrapped in a compile error: it is
                # still the user stopping the study, not a failed configuration.
                self._forget(trial, key, INTERRUPTED)
                raise KeyboardInterrupt from err
            failure = f"{type(err).__name__}: {str(err).strip()[:500]}"
            # One line, not Optuna's traceback (its warnings are silenced in open_search).
            self.log(f"trial {trial.number} failed: {config.label()}: {failure.splitlines()[0]}")
            write(trial, failed_after_seconds=time.time() - started)
            self._forget(trial, key, failure)  # a failure may be transient: try it again later
            self._log(trial, config, "failed", started)
            raise
        self._log(trial, config, "complete", started)
        return values

    def _forget(self, trial: optuna.Trial, key: str, failure: str) -> None:
        """Record why ``trial`` ended unfinished, and let its configuration be tried again."""
        write(trial, failure=failure)
        with self._lock:
            if self._seen.get(key) == trial.number:
                del self._seen[key]

    def _log(self, trial, config, state: str, started: float) -> None:
        if self.tracker:
            self.tracker.log_trial(trial, config, state=state, started=started)

    def _evaluate(self, trial: optuna.Trial, config: QuantConfig):
        limit = None if self.isolate else self.trial_timeout  # isolation enforces its own
        with time_limit(limit):
            outcome = self.evaluate(config)
        write(trial, quantize_seconds=outcome.quantize_seconds)
        write(trial, layer_map=outcome.layer_map)
        if outcome.pruned_reason:
            write(trial, pruned_after_seconds=outcome.pruned_after_seconds)
            write(trial, subset_drop=outcome.subset_drop)
            write(trial, pruned_reason=outcome.pruned_reason)
            raise optuna.TrialPruned(outcome.pruned_reason)
        metrics = Metrics(**outcome.metrics)
        if metrics.timed_busy and not self._said_busy:
            self._said_busy = True  # once: on a busy machine every trial would say it
            warning = busy_warning(
                self.scenario.threads, metrics.cpu_wait_share, metrics.load_average
            )
            self.log(f"warning: trial {trial.number}: {warning}")
        violation = self.budget.violation(metrics)
        write(trial, evaluate_seconds=outcome.evaluate_seconds)
        write(trial, metrics=outcome.metrics)
        write(trial, violation=violation)
        trial.set_constraint("budget", violation)
        return self._values(metrics)

    def _skip_if_failing_the_same_way(self, trial: optuna.Trial, config: QuantConfig) -> None:
        """Prune ``config`` when its method on its backend already failed ``REPEATED_FAILURES``
        times on this model with the same error: another observer or layer choice will not
        help (seen: PT2E on qnnpack failed 7 of a MiniLM study's 30 trials with one IndexError),
        and the trials are better spent elsewhere."""
        failures: dict[str, int] = {}
        for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            earlier = attributes(other).get("config")
            failure = attributes(other).get("failure")
            if not earlier or not failure or failure == INTERRUPTED:
                continue  # a trial the user stopped says nothing about the method
            if (earlier["method"], earlier["backend"]) == (config.method, config.backend):
                failures[failure] = failures.get(failure, 0) + 1
        failure, count = max(failures.items(), key=lambda item: item[1], default=("", 0))
        if count >= REPEATED_FAILURES:
            reason = (
                f"{config.method} on {config.backend} failed {count} times on this model with "
                f"the same error ({failure.splitlines()[0][:200]}), so it was not run again"
            )
            write(trial, pruned_reason=reason)
            write(trial, pruned_after_seconds=0.0)
            raise optuna.TrialPruned(reason)

    def _skip_if_twin_holds(self, trial: optuna.Trial, config: QuantConfig) -> None:
        """Prune ``config`` when its method builds models like another's (``deploys_as``: QAT
        like static int8) and that method with the same choices already holds the budget: it
        could only be more accurate, never faster or smaller, so its cost would buy nothing.
        Only with pruning on (``prune=True``, the default)."""
        if not self.prune:
            return
        other = twin_within_budget(config, trial.study.get_trials(deepcopy=False))
        if other is not None:
            label = QuantConfig.from_dict(attributes(other)["config"]).label()
            reason = (
                f"{config.method} builds the same int8 model as {label} (trial "
                f"{other.number}), which holds the budget: it cannot be faster or smaller, "
                f"so it was not run"
            )
            write(trial, pruned_reason=reason)
            write(trial, pruned_after_seconds=0.0)
            raise optuna.TrialPruned(reason)

    def _repeat(self, trial: optuna.Trial, earlier_number: int):
        """A configuration already evaluated: reuse its result instead of measuring again."""
        write(trial, duplicate_of=earlier_number)
        earlier = _wait_finished(trial.study, earlier_number)
        if earlier.state == optuna.trial.TrialState.PRUNED:
            reason = attributes(earlier).get("pruned_reason", "pruned")
            write(trial, pruned_reason=f"as trial {earlier_number}: {reason}")
            raise optuna.TrialPruned(f"same configuration as trial {earlier_number} (pruned)")
        if earlier.state != optuna.trial.TrialState.COMPLETE:
            raise RuntimeError(f"same configuration as trial {earlier_number}, which failed")
        measured = attributes(earlier)
        write(trial, **{key: measured[key] for key in ("metrics", "violation", "layer_map")})
        trial.set_constraint("budget", measured["violation"])
        return earlier.values if len(earlier.values) > 1 else earlier.values[0]

    def _values(self, metrics: Metrics):
        values = {
            "latency_ratio": 1 / metrics.speedup,
            "size_ratio": metrics.size_ratio,
            "drop": self.budget.drop(metrics),
        }
        picked = [values[name] for name in OBJECTIVES[self.objective]]
        return picked if len(picked) > 1 else picked[0]


def _stop_heartbeats(study: optuna.Study) -> None:
    """Stop the heartbeat threads of ``study``'s trials left beating once its optimize loop
    has returned. Optuna stops a trial's heartbeat when the trial ends, but a Ctrl-C that lands
    while the thread is being started skips that, and the thread (not a daemon) then beats
    forever and keeps the process from exiting (seen: a search alive ten minutes after its
    interrupt, waiting in threading._shutdown)."""
    for thread in threading.enumerate():
        target = getattr(thread, "_target", None)  # deleted when the thread has finished
        if getattr(target, "__qualname__", "") != "HeartbeatThread._record_heartbeat":
            continue
        args = getattr(thread, "_args", ())  # (trial id, the study's storage, stop event)
        if not any(arg is study._storage for arg in args):
            continue  # another study's, in this process
        for arg in args:
            if isinstance(arg, threading.Event):
                arg.set()  # its stop event: the loop returns after its current beat
        thread.join(timeout=GRACE_SECONDS)


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
    from autoquant.study.sensitivity import reference_config

    return reference_config(space.backends[0])


def _sampler(seed: int | None, n_jobs: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        group=True,
        constant_liar=n_jobs > 1,
        n_startup_trials=8,
    )


def default_study_name(task: Task, options: SearchOptions) -> str:
    name = (
        f"{task.name}-{task.model_name}-{options.space.name}-{options.objective}-"
        f"{options.budget}-{options.scenario.name}"
    )
    return name if options.confidence is None else f"{name}-c{options.confidence:g}"


@quietly
def search(
    task: Task,
    budget: Budget | str | float | None = None,
    space: SearchSpace | str | None = None,
    *,
    options: SearchOptions | None = None,
    tracker=None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **settings: Any,
) -> Recommendation:
    """Search quantization configs for ``task.model`` and recommend the best within ``budget``.

    Args:
        task: The model, its data and metric (``autoquant.tasks.digits_task`` or your own).
        budget: Largest drop allowed: ``"1pt"`` (points), ``"1%"`` (relative) or a Budget;
            the options' (``"1pt"`` by default) when None.
        space: A built-in space name, a YAML path or a SearchSpace; the options' (``default``)
            when None.
        options: The settings of the search (``autoquant.SearchOptions``); the defaults when
            None.
        tracker: Receives every trial and the recommendation (``autoquant.tracking``).
        progress: Show a progress bar.
        log: Where progress messages go.
        **settings: Any other field of ``SearchOptions`` by name, replacing the options'
            value: ``n_trials=20``, ``objective="size"``, ``scenario="bs64-t2"``,
            ``storage="sqlite:///autoquant.db"``, ...

    Returns:
        The Recommendation: always one, marked infeasible when no trial met the budget.
    """
    options = SearchOptions.of(options, "search", budget=budget, space=space, **settings)
    session = open_search(task, options=options, tracker=tracker, log=log)
    try:
        session.run(progress=progress)
    finally:
        session.runner.close()
    return session.finish()


@dataclasses.dataclass
class SearchSession:
    """An opened study with its objective: ``run`` adds trials, ``finish`` recommends."""

    study: optuna.Study
    runner: Objective
    options: SearchOptions
    n_trials: int | None  # the study's (a worker reads it from the study)
    tracker: object | None
    started: float
    log: Callable[[str], None]

    def finished_trials(self) -> int:
        """Trials that ended (complete, pruned or failed), not counting those a Ctrl-C
        stopped: a resumed study runs them again."""
        trials = self.study.get_trials(deepcopy=False, states=FINISHED)
        return sum(attributes(t).get("failure") != INTERRUPTED for t in trials)

    @quietly
    def run(self, *, progress: bool = True, shared: bool = False) -> int:
        """Run trials until the study holds ``n_trials`` finished ones (or the options'
        ``timeout``), ``n_jobs`` at a time; returns how many this process ran.

        ``shared``: other processes work on the same study, so stop on the study's total
        rather than on this process's count.
        """
        done = self.finished_trials()
        remaining = None if self.n_trials is None else max(0, self.n_trials - done)
        if done and not shared:
            self.log(
                f"resuming study {self.study.study_name!r}: {done} trial(s) done, "
                f"{remaining} to run"
            )
        if remaining == 0:
            return 0
        ran: list[int] = []
        callbacks: list = [
            lambda study, trial: ran.append(trial.number),
            RecoveryLadder(self.runner),
            LocalSteps(self.runner),
            StopWhenRepeating(self.log),
        ]
        if shared and self.n_trials is not None:
            callbacks.append(optuna.study.MaxTrialsCallback(self.n_trials, states=FINISHED))
            remaining = None
        bar = _ProgressBar(self.n_trials, done, self.runner.budget) if progress else None
        log = self.runner.log
        if bar and log is print:  # lines printed during the trials go above the bar, not into it
            from tqdm.auto import tqdm

            self.runner.log = tqdm.write
        try:
            with watching():
                self.study.optimize(
                    self.runner,
                    n_trials=remaining,
                    timeout=self.options.timeout,
                    n_jobs=self.options.n_jobs,
                    catch=(Exception,),
                    callbacks=callbacks + ([bar] if bar else []),
                )
        finally:
            self.runner.log = log
            if bar:
                bar.close()
            _stop_heartbeats(self.study)
        return len(ran)

    @quietly
    def finish(self) -> Recommendation:
        """Recommend from every trial of the study (all processes' included)."""
        runner = self.runner
        records = [TrialRecord.from_trial(t) for t in self.study.get_trials(deepcopy=False)]
        with watching():
            recommendation = recommend(
                records,
                task=runner.task,
                budget=runner.budget,
                objective=runner.objective,
                scenario=runner.scenario,
                study_name=self.study.study_name,
                sensitivity=runner.sensitivity,
                search_seconds=time.perf_counter() - self.started,
                trial_timeout=runner.trial_timeout,
                sensitivity_seconds=runner.sensitivity_seconds,
            )
        recommendation.param_importances = _importances(self.study)
        recommendation.notes = list(runner.notes) + recommendation.notes
        if self.tracker:
            self.tracker.finish_study(self.study, recommendation, first_examples(runner.example))
        return recommendation


@quietly
def open_search(
    task: Task,
    budget: Budget | str | float | None = None,
    space: SearchSpace | str | None = None,
    *,
    options: SearchOptions | None = None,
    tracker=None,
    experiment: dict | None = None,
    log: Callable[[str], None] = print,
    **settings: Any,
) -> SearchSession:
    """Create (or resume) the study, measure the float baseline once and enqueue the first
    trials; no trial runs yet. ``search`` documents the parameters; ``experiment`` (task,
    model, checkpoint names) lets ``autoquant worker`` rebuild the task."""
    options = SearchOptions.of(options, "open_search", budget=budget, space=space, **settings)
    study_name = options.study_name or default_study_name(task, options)
    # The progress bar says it better; a failed trial prints its own one line (Objective).
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    started = time.perf_counter()
    runner = Objective(task, options, tracker=tracker, log=log)
    settings = {
        "objective": options.objective,
        "budget": str(options.budget),
        "space": options.space.to_dict(),
        "scenario": options.scenario.name,
    }
    if options.confidence is not None:  # a study judged by another rule is another study
        settings["confidence"] = options.confidence
    study = open_study(study_name, options.storage, settings, options.seed, options.n_jobs)
    if options.n_trials is not None:
        write(study, n_trials=options.n_trials)
    if experiment is not None:
        write(study, experiment=experiment)
    runner.prepare(study)
    warm_start = options.warm_start
    if not study.get_trials(deepcopy=False) and warm_start != "none":
        if warm_start == "rules":
            first = runner.prior_configs()
        elif warm_start == "history":
            uri = options.history_uri or (tracker.uri if tracker else None)
            first = runner.history_configs(uri)
        else:
            first = list(warm_start)
        enqueue(
            study,
            runner.space,  # without the methods the model cannot take
            runner.layers,
            runner.sensitive_first,
            [*first, *PLAIN_RECIPES.values(), COMPILED_FLOAT],
        )
    if tracker:
        tracker.start_study(study, runner)
    return SearchSession(study, runner, options, options.n_trials, tracker, started, log)


@quietly
def join_search(
    storage: str,
    study_name: str,
    *,
    tracker=None,
    trial_timeout: float | None = None,
    isolate: bool = False,
    log: Callable[[str], None] = print,
) -> SearchSession:
    """Open a study that ``autoquant search`` created, to add trials from another process or
    machine: the task, budget, space and trial count are read from the study itself."""
    from autoquant.study.experiment import build_task, task_spec

    study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    attrs = attributes(study)
    if "experiment" not in attrs or "settings" not in attrs:
        raise ConfigError(
            f"The study {study_name!r} in {redact(storage)} was not created by `autoquant "
            f"search` (it lacks the task and settings a worker needs). Start it with "
            f"`autoquant search --storage ... --study {study_name}` first."
        )
    settings = attrs["settings"]
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # as open_search
    task = build_task(task_spec(attrs["experiment"]), log=log)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in settings["space"].items()}
    options = SearchOptions(
        budget=settings["budget"],
        space=SearchSpace(**fields),
        objective=settings["objective"],
        scenario=settings["scenario"],
        confidence=settings.get("confidence"),
        storage=storage,
        study_name=study_name,
        trial_timeout=trial_timeout,
        isolate=isolate,
    )
    runner = Objective(task, options, tracker=tracker, log=log)
    runner.prepare(study)
    if tracker:
        tracker.start_study(study, runner)
    return SearchSession(
        study, runner, options, attrs.get("n_trials"), tracker, time.perf_counter(), log
    )


def _check_picklable(task: Task) -> None:
    """``isolate`` sends the task to a spawned worker process, which needs it pickled."""
    import pickle

    try:
        pickle.dumps(task)
    except Exception as err:  # noqa: BLE001 - any pickling failure has the same fix
        raise ConfigError(
            f"isolate=True (--isolate) runs each trial in a worker process, which receives the "
            f"task pickled, and this task cannot be pickled ({type(err).__name__}: {err}). Define "
            f"its model class and its hooks (transform_fn, output_fn, metric...) at module level "
            f"rather than as lambdas or local functions, or search without isolation."
        ) from None


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
    """Importances of the searched choices for the first objective, by Optuna's default
    evaluator (PED-ANOVA in Optuna 5, not fANOVA); empty when too few trials
    or conditional choices leave nothing common to compare."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "few trials per regime" is expected in a small study
            return optuna.importance.get_param_importances(study, target=lambda t: t.values[0])
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def redact(url: str) -> str:
    """A storage URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def make_storage(url: str | None):
    """An Optuna storage for ``url`` (None: in memory). Database storages keep a heartbeat, so
    a trial whose process died is marked failed when the study is next opened; an unreachable
    database fails here, naming the URL."""
    if url is None:
        return None
    if not re.match(r"^[a-z0-9+]+://", url):
        raise ConfigError(
            f"The 'storage' parameter must be a database URL such as sqlite:///autoquant.db or "
            f"postgresql+psycopg2://user:password@host/db. Got {url!r} instead."
        )
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            engine_kwargs=engine_kwargs,
        )
    except Exception as err:  # noqa: BLE001 - any failure to open it means "cannot store"
        raise ConfigError(
            f"The study storage {redact(url)} cannot be opened: "
            f"{str(err).strip().splitlines()[0][:300]}. Check that the database server is "
            f"running and the URL, user and password are right."
        ) from None


def open_study(study_name: str, storage: str | None, settings: dict, seed, n_jobs) -> optuna.Study:
    """Create the study, or load it when it exists with the same budget, space and objective."""
    directions = ["minimize"] * len(OBJECTIVES[settings["objective"]])
    study = optuna.create_study(
        study_name=study_name,
        storage=make_storage(storage),
        sampler=_sampler(seed, n_jobs),
        directions=directions,
        load_if_exists=True,
    )
    settings = json.loads(json.dumps(settings))  # as the storage gives it back: lists, not tuples
    stored = attributes(study).get("settings")
    if stored is None:
        write(study, settings=settings)
    elif stored != settings:
        differs = sorted(k for k in {*settings, *stored} if stored.get(k) != settings.get(k))
        raise ConfigError(
            f"The study {study_name!r} in {redact(storage)} was started with a different "
            f"{differs}; resume it with the same settings, or choose a new study name "
            f"(--study) or --force-new."
        )
    if storage is not None:
        optuna.storages.fail_stale_trials(study)  # trials of a process that died
    return study


class _ProgressBar:
    """A tqdm bar over trials showing the best feasible result so far."""

    def __init__(self, total: int | None, initial: int, budget: Budget) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="trial", desc="search", leave=True)
        self.budget = budget
        self.best: tuple[float, float] | None = None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        metrics = attributes(trial).get("metrics")
        if metrics and attributes(trial).get("violation", math.inf) <= 0:
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


__all__ = ["OBJECTIVES", "SearchOptions", "open_search", "open_study", "search"]
