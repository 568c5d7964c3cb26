"""``measure()``: the one place a candidate is scored and timed against the float model.

Every caller measures through it: a trial, the prior rules' quick estimates, the plain recipes,
the recommendation's final round on held-out data and the benchmark's sweep. The float side
(``FloatReference``) is measured once per data set and scenario and shared by every candidate;
candidates measured together are timed in one interleaved run, so the figures they are
compared on share the same machine state. A candidate that runs in ONNX Runtime is also timed
against the float model in ONNX Runtime, so its speedup is honest about both baselines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from autoquant._warnings import quietly
from autoquant.engine.compile import compile_module
from autoquant.engine.ort import OrtModule, export_onnx
from autoquant.engine.quantized import QuantizedModel
from autoquant.measure.latency import Timing, example_batch, measure_latency
from autoquant.measure.result import Metrics, make_metrics, serialized_size
from autoquant.measure.scenario import Scenario
from autoquant.measure.scoring import Answers, count_flips, output_sqnr, score_and_answers
from autoquant.measure.uncertainty import DropInterval, answers_interval


@dataclasses.dataclass(frozen=True)
class TimingPlan:
    """How long candidates are timed: at least ``min_rounds`` and at most ``max_rounds``
    interleaved rounds, stopping after about ``budget_s`` seconds of timing per model."""

    budget_s: float = 1.0
    min_rounds: int = 7
    max_rounds: int = 50


#: A trial, a recipe: about a second per model.
TRIAL_TIMING = TimingPlan()
#: The prior rules' estimates: seconds for all of them, not a search.
QUICK_TIMING = TimingPlan(budget_s=0.2, min_rounds=5, max_rounds=15)
#: The final round: every finalist head to head, with more rounds to split close ones.
FINAL_TIMING = TimingPlan(budget_s=1.0, min_rounds=10, max_rounds=80)


@dataclasses.dataclass(frozen=True)
class Scored:
    """A candidate's score on a reference's data, and how its answers differ from float's."""

    accuracy: float
    flips: int | None = None
    output_sqnr_db: float | None = None
    interval: DropInterval | None = None  # how sure its drop is (``measure.uncertainty``)
    upper: DropInterval | None = None  # in confidence mode: the interval whose high bound counts


@dataclasses.dataclass
class FloatReference:
    """The float model measured once on ``data`` under ``scenario``: what candidates are
    compared with.

    Attributes:
        task: The task (its float model, metric and adapter).
        scenario: Batch size, threads and the baseline speedups are measured against.
        data: The batches candidates are scored on.
        accuracy: The float model's score on ``data``.
        answers: The float model's answers on ``data`` (flips and SQNR compare with them).
        size_bytes: The float model's serialized size.
        example: The input batch models are timed on (``scenario.batch_size`` examples of the
            validation data, whatever ``data`` is).
        compiled: The float model compiled on ``example`` (made when a candidate deployed
            compiled, or the compiled baseline, first needs it; not pickled).
        onnx: The float model exported to ONNX Runtime (made when a candidate that runs in
            ONNX Runtime first needs it; not pickled).
        confidence: Confidence mode: each score also carries the one-sided upper bound of
            its drop at this confidence (``Metrics.drop_upper``), which feasibility uses.
    """

    task: Any
    scenario: Scenario
    data: Iterable
    accuracy: float
    answers: Answers | None
    size_bytes: int
    example: Any
    compiled: nn.Module | None = dataclasses.field(default=None, repr=False, compare=False)
    onnx: nn.Module | None = dataclasses.field(default=None, repr=False, compare=False)
    confidence: float | None = None

    @classmethod
    def of(
        cls, task: Any, scenario: Scenario, data: Iterable | None = None, **known: Any
    ) -> FloatReference:
        """Measure ``task.model`` on ``data`` (the validation data by default).

        ``accuracy`` with ``answers``, and ``size_bytes``, may be passed when already known
        (a study measures float before it starts); the rest is measured here.
        """
        data = task.validation_data if data is None else data
        if "accuracy" not in known or "answers" not in known:
            known["accuracy"], known["answers"] = score_and_answers(task.model, data, task)
        known.setdefault("size_bytes", serialized_size(task.model))
        # timed on the validation data's inputs whatever is scored: what runs compiled is
        # compiled (and checked against eager) on the same example in every measurement
        known.setdefault("example", example_batch(task.validation_data, scenario.batch_size, task))
        return cls(task, scenario, data, **known)

    def __getstate__(self) -> dict:
        # A compiled module does not cross processes; an isolated worker compiles its own (and
        # exports its own ONNX float model: an ONNX Runtime session does not pickle either).
        return {**self.__dict__, "compiled": None, "onnx": None}

    def deploy(self, candidate: nn.Module) -> dict[str, nn.Module]:
        """The models ``candidate`` is timed with: ``float`` (eager), itself, ``compiled
        float`` when the candidate deploys compiled or the baseline is compiled float, and
        ``onnx float`` when the candidate runs in ONNX Runtime.

        A candidate deployed through torch.compile is compiled here, on this reference's
        example and threads, before it is scored: what runs is what is scored.
        """
        compiled = isinstance(candidate, QuantizedModel) and candidate.needs_compile
        threads = self.scenario.threads
        if compiled and not candidate.is_compiled_for(self.example, threads):
            candidate.compile(self.example, threads=threads)
        models = {"float": self.task.model, "candidate": candidate}
        if compiled or self.scenario.baseline == "compiled":
            if self.compiled is None:
                self.compiled, _ = compile_module(self.task.model, self.example, threads=threads)
            models["compiled float"] = self.compiled
        if runs_in_onnx_runtime(candidate):
            if self.onnx is None:
                self.onnx = export_onnx(self.task.model, self.example)
            models["onnx float"] = self.onnx
        return models

    def score(self, candidate: nn.Module) -> Scored:
        """``candidate``'s score on this reference's data (compiled first if it deploys
        compiled) and how many of float's answers it changes."""
        self.deploy(candidate)
        accuracy, answers = score_and_answers(candidate, self.data, self.task)
        metric = self.task.metric
        # a one-sided bound at c is the high end of the two-sided interval at 2c - 1
        upper = (
            answers_interval(answers, self.answers, metric, 2 * self.confidence - 1)
            if self.confidence is not None
            else None
        )
        return Scored(
            accuracy,
            count_flips(answers, self.answers),
            output_sqnr(answers, self.answers),
            answers_interval(answers, self.answers, metric),
            upper,
        )


@quietly
def measure(
    candidates: nn.Module | Sequence[nn.Module],
    reference: FloatReference,
    *,
    timing: TimingPlan = TRIAL_TIMING,
    scored: Scored | Sequence[Scored] | None = None,
) -> Metrics | list[Metrics]:
    """Score ``candidates`` on the reference's data and time them against float.

    Args:
        candidates: One model (a ``QuantizedModel`` or any module), or several, which are then
            timed together in one interleaved run (with float once).
        reference: The float model measured on the data and scenario to compare with.
        timing: How long to time.
        scored: The candidates' scores when already known (``FloatReference.score``, e.g. under
            a time limit); they are scored here otherwise.

    Returns:
        The candidate's Metrics, or a list in the order of ``candidates``.
    """
    single = isinstance(candidates, nn.Module)
    models = [candidates] if single else list(candidates)
    if scored is None:
        scores = [reference.score(model) for model in models]
    else:
        scores = [scored] if isinstance(scored, Scored) else list(scored)
    timed: dict[str, nn.Module] = {}
    for i, model in enumerate(models):
        for name, module in reference.deploy(model).items():
            timed[str(i) if name == "candidate" else name] = module
    timings = measure_latency(timed, reference.example, reference.scenario.threads, **vars(timing))
    metrics = [
        _metrics(model, score, timings, str(i), reference)
        for i, (model, score) in enumerate(zip(models, scores, strict=True))
    ]
    return metrics[0] if single else metrics


def runs_in_onnx_runtime(model: nn.Module) -> bool:
    """Whether ``model`` (a ``QuantizedModel`` or a module) runs in an ONNX Runtime session."""
    return isinstance(getattr(model, "module", model), OrtModule)


def _metrics(
    model: nn.Module, score: Scored, timings: dict[str, Timing], key: str, ref: FloatReference
) -> Metrics:
    own = {"float": timings["float"], "candidate": timings[key]}
    compiled = isinstance(model, QuantizedModel) and model.needs_compile
    if compiled or ref.scenario.baseline == "compiled":
        own["compiled float"] = timings["compiled float"]
    if runs_in_onnx_runtime(model):
        own["onnx float"] = timings["onnx float"]
    return make_metrics(
        score.accuracy,
        ref.accuracy,
        own,
        serialized_size(model),
        ref.size_bytes,
        ref.scenario,
        metric=ref.task.metric,
        compile_seconds=getattr(model, "compile_seconds", 0.0),
        flips=score.flips,
        output_sqnr_db=score.output_sqnr_db,
        interval=score.interval,
        upper=score.upper,
    )
