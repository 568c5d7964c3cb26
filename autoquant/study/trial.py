"""Evaluating one configuration, safely: in this process, or in a worker process of its own.

``Evaluator`` quantizes, scores a quarter of the validation data first (pruning a trial whose
drop is already far past the budget), then measures the model (``autoquant.measure``). It returns an
``Outcome`` of plain data, so the same code runs in a child process when trials are isolated:
there a segfault in a quantized kernel, or a trial that hangs past its time limit, kills only
the child, and the study goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import threading
import time

from autoquant._warnings import quiet
from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.measure import FloatReference, measure
from autoquant.measure.limits import TrialTimeout
from autoquant.measure.scoring import Answers, score_and_answers
from autoquant.measure.uncertainty import DropInterval, answers_interval
from autoquant.tasks.base import Task

# A trial is pruned when its drop on the first quarter of the validation data is beyond
# max(PRUNE_FACTOR x budget, budget + PRUNE_MARGIN points), and the lower bound of that drop's
# 95 % interval is beyond the budget: on a subset where one example is 4.7 points, one changed
# answer passes the first test and not the second.
PRUNE_FACTOR = 3.0
PRUNE_MARGIN = 5.0


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The float model, measured once per study."""

    accuracy: float
    subset_accuracy: float
    size_bytes: int


@dataclasses.dataclass
class Outcome:
    """What evaluating one configuration gave: plain data, picklable across processes."""

    quantize_seconds: float = 0.0
    layer_map: dict | None = None
    pruned_reason: str | None = None
    subset_drop: float | None = None
    pruned_after_seconds: float | None = None
    metrics: dict | None = None
    evaluate_seconds: float | None = None


@dataclasses.dataclass
class Evaluator:
    """Everything needed to evaluate a configuration against the float baseline."""

    task: Task
    budget: Budget
    baseline: Baseline
    subset: list
    reference: FloatReference  # float on the validation data, under the study's scenario
    prune: bool = True
    subset_answers: Answers | None = None  # float's on the subset, for the drop's interval

    def __call__(self, config: QuantConfig) -> Outcome:
        task, baseline = self.task, self.baseline
        started = time.perf_counter()
        quantized = task.build(config)
        quantized_at = time.perf_counter()
        # A candidate deployed compiled is compiled before it is scored (what runs is scored);
        # the compile time counts in evaluate_seconds and is reported as compile_seconds.
        # Compiled float (a reference) is compiled once per study.
        self.reference.deploy(quantized)
        outcome = Outcome(quantize_seconds=quantized_at - started, layer_map=quantized.layer_map)
        if self.prune and task.eval_fn is None:  # an eval_fn scores all its data at once
            value, answers = score_and_answers(quantized, self.subset, task)
            subset_drop = self.budget.drop_between(task.metric, baseline.subset_accuracy, value)
            reason = None
            if subset_drop > prune_limit(self.budget):  # the interval only then (a bootstrap)
                reason = prune_reason(
                    subset_drop,
                    answers_interval(answers, self.subset_answers, task.metric),
                    self.budget,
                    baseline.subset_accuracy,
                    bounded=task.metric.bounded,
                )
            if reason:
                outcome.subset_drop = subset_drop
                outcome.pruned_after_seconds = time.perf_counter() - quantized_at
                outcome.pruned_reason = reason
                return outcome
        outcome.metrics = measure(quantized, self.reference).to_dict()
        outcome.evaluate_seconds = time.perf_counter() - quantized_at
        return outcome


def prune_limit(budget: Budget) -> float:
    """The drop on the validation subset beyond which a trial may be pruned."""
    return max(PRUNE_FACTOR * budget.max_drop, budget.max_drop + PRUNE_MARGIN)


def prune_reason(
    subset_drop: float,
    interval: DropInterval | None,
    budget: Budget,
    float_score: float,
    *,
    bounded: bool,
) -> str | None:
    """Why a trial is pruned on the validation subset, or None to measure it in full.

    Its drop there must be beyond the pruning limit, and the subset must resolve it: the lower
    bound of the drop's interval beyond the budget. Without an interval (the examples came in
    another order, or no per-example scores), the limit alone decides.
    """
    limit = prune_limit(budget)
    if subset_drop <= limit:
        return None
    reason = (
        f"drop {subset_drop:.2f} on a quarter of the validation data, beyond the pruning limit "
        f"{limit:.2f} (budget {budget})"
    )
    if interval is None:
        return reason
    low = budget.from_points(interval.low, float_score, bounded=bounded)
    if low <= budget.max_drop:
        return None  # the subset cannot tell: one or two changed answers of a few
    unit = "%" if budget.relative else ("pt" if bounded else "")
    return (
        f"{reason}, and the lower bound of its 95 % interval, {low:.2f}{unit} on "
        f"{interval.examples} examples, also beyond the budget"
    )


def _serve(evaluator: Evaluator, connection) -> None:
    """The isolated worker: evaluate each config it receives until told to stop."""
    while True:
        config = connection.recv()
        if config is None:
            return
        try:
            with quiet():
                connection.send(("ok", evaluator(config)))
        except Exception as err:  # noqa: BLE001 - every failure goes back as the trial's reason
            connection.send(("error", f"{type(err).__name__}: {str(err).strip()[:500]}"))


class IsolatedEvaluator:
    """Runs an Evaluator in a spawned worker process; a crash or a hang kills only the worker,
    which is started again for the next trial."""

    def __init__(self, evaluator: Evaluator, timeout: float | None = None) -> None:
        self.evaluator = evaluator
        self.timeout = timeout
        self.process = None
        self.connection = None
        self._lock = threading.Lock()  # one worker: trials of parallel threads take turns

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # fork would inherit OpenMP's threads
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(self.evaluator, child), daemon=True)
        self.process.start()
        child.close()

    def __call__(self, config: QuantConfig) -> Outcome:
        with self._lock:
            if self.process is None or not self.process.is_alive():
                self._start()
            self.connection.send(config)
            if not self.connection.poll(self.timeout):
                self._stop(kill=True)
                raise TrialTimeout(
                    f"the trial ran past its time limit of {self.timeout:g} s "
                    f"(its worker process was killed)"
                )
            try:
                status, payload = self.connection.recv()
            except (EOFError, ConnectionError):
                self.process.join(5)
                code = self.process.exitcode
                self.process = None
                cause = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                raise RuntimeError(f"the trial's worker process died ({cause})") from None
        if status == "error":
            raise RuntimeError(payload)
        return payload

    def _stop(self, kill: bool = False) -> None:
        if self.process is not None:
            if kill:
                self.process.kill()
            else:
                with contextlib.suppress(OSError):
                    self.connection.send(None)
            self.process.join(10)
        self.process = None

    def close(self) -> None:
        self._stop()
