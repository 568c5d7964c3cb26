"""Measurements: the metric and its drop, latency against float (interleaved), serialized size.

Quantized is not always faster: on a small MLP every int8 variant ran slower than float on a
2-core x86 machine. So speed is always measured here, never assumed, and always as a ratio
against the float model timed in the same process, in alternation, under the same scenario.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import torch
from torch import nn

from autoquant._validation import check_int
from autoquant.backends import quantized_engine
from autoquant.compile import canonical, compile_module, inductor_settings
from autoquant.data import (
    DEFAULT_ADAPTER,
    Adapter,
    batch_length,
    call,
    check_reiterable,
    concat,
    map_tensors,
    shape_signature,
)
from autoquant.errors import ConfigError, DataError
from autoquant.quantized import QuantizedModel
from autoquant.tasks.metrics import Metric, get_metric

#: What a scenario's speedups are measured against: the float model run eagerly (what most
#: deployments do) or compiled with Inductor (for a user who already compiles float).
BASELINES = ("eager", "compiled")


@dataclasses.dataclass(frozen=True)
class Scenario:
    """How the model will be served: examples per call, CPU threads, and the float model the
    speedups are measured against (``baseline``: ``eager`` or ``compiled``)."""

    batch_size: int = 1
    threads: int = 1
    baseline: str = "eager"

    def __post_init__(self) -> None:
        check_int("Scenario", "batch_size", self.batch_size, low=1)
        check_int("Scenario", "threads", self.threads, low=1)
        if self.baseline not in BASELINES:
            raise ConfigError(
                f"The 'baseline' parameter of Scenario must be one of {list(BASELINES)}. "
                f"Got {self.baseline!r} instead."
            )

    @property
    def name(self) -> str:
        suffix = "-compiled" if self.baseline == "compiled" else ""
        return f"bs{self.batch_size}-t{self.threads}{suffix}"

    @property
    def reference(self) -> str:
        """The name of the float model speedups are measured against."""
        return "compiled float" if self.baseline == "compiled" else "float"


#: Built-in deployment scenarios: one request at a time on one thread, and throughput; each
#: against eager float (default) or against float compiled with Inductor.
SCENARIOS = {
    s.name: s
    for s in [
        Scenario(1, 1),
        Scenario(64, 2),
        Scenario(1, 1, "compiled"),
        Scenario(64, 2, "compiled"),
    ]
}


def get_scenario(name: str | Scenario) -> Scenario:
    """A Scenario, or one named ``bs{N}-t{M}`` (N examples a call on M threads), with
    ``-compiled`` after it to measure speedups against float compiled with Inductor."""
    if isinstance(name, Scenario):
        return name
    match = re.fullmatch(r"bs([0-9]+)-t([0-9]+)(-compiled)?", str(name).strip())
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ConfigError(
            f"The 'scenario' parameter must be 'bs{{N}}-t{{M}}' (N examples a call on M threads, "
            f"both >= 1, e.g. {list(SCENARIOS)[:2]}), optionally ending in '-compiled', or a "
            f"Scenario. Got {name!r} instead."
        )
    batch, threads, compiled = match.groups()
    return Scenario(int(batch), int(threads), "compiled" if compiled else "eager")


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _scoring(how: Any) -> Any:
    """A task (anything with ``metric``, ``adapter``, ``eval_fn``), or a bare metric wrapped as
    one that reads batches by their structure (what older callers pass)."""
    if hasattr(how, "adapter") and hasattr(how, "metric"):
        return how
    return _BareMetric(get_metric(how))


@dataclasses.dataclass(frozen=True)
class _BareMetric:
    metric: Metric
    adapter: Adapter = DEFAULT_ADAPTER
    eval_fn: None = None
    label_free: bool = False

    def reference_outputs(self, data, outputs_of):
        raise ConfigError(
            f"The metric {self.metric.name!r} compares with the float model's outputs: score "
            f"with the Task (which holds the float model), not the bare metric."
        )


@torch.no_grad()
def predict(
    model: nn.Module, data: Iterable, task: Any = None, *, max_batches: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(outputs to score, targets or None) of ``model`` over the first ``max_batches`` batches
    of ``data``, read through the task's adapter (by structure when ``task`` is None)."""
    check_reiterable(data, "data")
    adapter = DEFAULT_ADAPTER if task is None else _scoring(task).adapter
    outputs, targets = [], []
    for i, batch in enumerate(data):
        if max_batches is not None and i >= max_batches:
            break
        outputs.append(adapter.forward(model, batch))
        targets.append(adapter.targets(batch))
    if not outputs:
        raise DataError("The evaluation data is empty: give at least one batch.")
    return _join(outputs, "outputs"), _join_targets(targets)


def _join(pieces: list[torch.Tensor], what: str) -> torch.Tensor:
    shapes = {tuple(p.shape[1:]) for p in pieces}
    if len(shapes) > 1:
        raise DataError(
            f"The model's {what} differ in shape from batch to batch ({sorted(shapes)[:3]} past "
            f"the batch dimension) and cannot be scored together. Pad every batch to one "
            f"length, or give the task an output_fn that pools them (e.g. a mean over tokens)."
        )
    return torch.cat([p if p.dim() else p[None] for p in pieces])


def _join_targets(targets: list) -> torch.Tensor | None:
    if all(t is None for t in targets):
        return None
    if any(t is None for t in targets):
        raise DataError("Some batches carry targets and some do not: give all or none.")
    return _join([torch.as_tensor(t) for t in targets], "targets")


def _reference(model_outputs_of, data: Iterable, task: Any, targets: torch.Tensor | None):
    """What the metric compares with: the targets, or (label-free) float's outputs."""
    if task.metric.label_free:
        return task.reference_outputs(data, model_outputs_of)
    if targets is None:
        raise DataError(
            f"The metric {task.metric.name!r} needs targets, and the batches carry none. Give "
            f"(inputs, targets) batches (or a target_fn), or score without labels: "
            f"metric='agreement' (classifiers) or 'cosine' (any output)."
        )
    return targets


def score(
    model: nn.Module,
    data: Iterable,
    task: Any,
    *,
    max_batches: int | None = None,
) -> float:
    """The metric of ``model`` on ``data`` (``task``: a Task, or a metric for batches read
    by their structure); a bounded metric outside [0, 1], NaN or a non-number is refused."""
    return score_and_answers(model, data, task, max_batches=max_batches)[0]


def _outputs_only(task: Any) -> Callable:
    return lambda model, data: predict(model, data, task)[0]


def score_outputs(outputs: torch.Tensor, reference: torch.Tensor, metric: Any) -> float:
    """The metric of outputs already computed (``predict``) against ``reference`` (targets, or
    float's outputs for a label-free metric); checked as ``score`` checks it."""
    metric = get_metric(metric)
    if outputs.is_floating_point() and not torch.isfinite(outputs).all():
        raise DataError(
            f"The model produced NaN or infinite outputs ({int((~torch.isfinite(outputs)).sum())} "
            f"of {outputs.numel()} values): a numerical failure, not a score."
        )
    try:
        value = metric.fn(outputs, reference)
    except Exception as err:  # noqa: BLE001 - the user's metric failed on the model's output
        raise DataError(
            f"The metric {metric.name!r} failed on the model's output (output shape "
            f"{tuple(outputs.shape)}, reference shape {tuple(reference.shape)}): "
            f"{type(err).__name__}: {err}."
        ) from None
    return checked_value(value, metric, f"for output shape {tuple(outputs.shape)}")


def checked_value(value: Any, metric: Metric, where: str) -> float:
    """``value`` as a float, refused when it is not a number, NaN, or outside [0, 1] for a
    bounded metric."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"The metric {metric.name!r} must return a number. Got {type(value).__name__} {where}."
        ) from None
    if math.isnan(number):
        raise DataError(f"The metric {metric.name!r} returned NaN {where}.")
    if metric.bounded and not 0.0 <= number <= 1.0:
        raise DataError(
            f"The metric must return a score in [0, 1] (higher is better). Got {number!r} "
            f"{where}; check that the model's output fits the metric, or pass "
            f"Metric(name, fn, bounded=False, higher_is_better=...) for another scale."
        )
    return number


class Answers(NamedTuple):
    """The top-1 class a model gave each example (None unless classification), the targets in
    the order seen (None when label-free), and the outputs scored (``output_sqnr`` compares
    them)."""

    classes: torch.Tensor | None
    targets: torch.Tensor | None
    scores: torch.Tensor


def score_and_answers(
    model: nn.Module, data: Iterable, task: Any, *, max_batches: int | None = None
) -> tuple[float, Answers | None]:
    """``score`` and the model's answers (``predicted_answers``) from one pass over ``data``.

    Args:
        model: The model to run.
        data: Batches of any structure the task's adapter reads.
        task: The Task (its metric, adapter, eval_fn), or a metric for batches read by their
            structure.
        max_batches: Score only the first this many batches.

    Returns:
        The score, and the answers (None with an ``eval_fn``, which gives a score only).
    """
    task = _scoring(task)
    if task.eval_fn is not None:
        return checked_value(task.eval_fn(model), task.metric, "from eval_fn"), None
    if task.metric.label_free and max_batches is not None:
        raise ConfigError("max_batches cannot be used with a label-free metric.")
    outputs, targets = predict(model, data, task, max_batches=max_batches)
    # the float model scoring itself label-free: its outputs are the reference, not a 2nd pass
    outputs_of = (
        (lambda _model, _data: outputs)
        if model is getattr(task, "model", None)
        else _outputs_only(task)
    )
    reference = _reference(outputs_of, data, task, targets)
    value = score_outputs(outputs, reference, task.metric)
    return value, predicted_answers(outputs, targets, task.metric)


def predicted_answers(
    outputs: torch.Tensor, targets: torch.Tensor | None, metric: Any = None
) -> Answers | None:
    """The top-1 class of each example when the task is single-label classification.

    That is: outputs of class scores (N, classes) with targets of class indices (N,), or,
    label-free, the ``agreement`` metric. The outputs are kept for ``output_sqnr`` either way;
    other outputs (a regression, an embedding, a sequence) have no single class to agree on,
    and an argmax of them would count changes that mean nothing.
    """
    scores = outputs.float()
    class_scores = outputs.dim() == 2 and outputs.shape[1] >= 2 and outputs.is_floating_point()
    if targets is None:
        agreeing = metric is not None and get_metric(metric).name == "agreement"
        return Answers(outputs.argmax(dim=1) if class_scores and agreeing else None, None, scores)
    classification = (
        class_scores
        and targets.dim() == 1
        and not targets.is_floating_point()
        and len(targets) == len(outputs)
    )
    return Answers(outputs.argmax(dim=1) if classification else None, targets, scores)


def _same_order(answers: Answers, float_answers: Answers) -> bool:
    """Whether two passes saw the examples in the same order (by their targets; label-free
    passes are taken to, as the metric itself assumes)."""
    if answers.targets is None or float_answers.targets is None:
        return answers.targets is None and float_answers.targets is None
    return torch.equal(answers.targets, float_answers.targets)


def count_flips(answers: Answers | None, float_answers: Answers | None) -> int | None:
    """Examples whose top-1 class differs from the float model's.

    Accuracy only counts the net change: a model that turns three right answers wrong and
    three wrong ones right loses nothing on that data, yet disagrees with float six times, and
    on new data those changes need not cancel. Flips count every change.

    Args:
        answers: The candidate's answers (``score_and_answers``).
        float_answers: The float model's answers on the same data.

    Returns:
        The count, or None when either has no answers or the two did not see the examples
        in the same order (a shuffled loader: comparing position by position would be wrong).
    """
    if answers is None or float_answers is None or not _same_order(answers, float_answers):
        return None
    if answers.classes is None or float_answers.classes is None:
        return None
    return int((answers.classes != float_answers.classes).sum())


def output_sqnr(answers: Answers | None, float_answers: Answers | None) -> float | None:
    """How closely a candidate's class scores follow float's: their signal-to-quantization-
    noise ratio in dB (higher is closer; infinite when they are equal).

    A finer view than flips for a person comparing trials: two candidates that change none of
    float's answers can still have moved the scores by very different amounts. It is reported,
    not ranked on. Among the digits CNNs' configurations within budget on validation, it told
    those that also held the budget on test from those that did not about as well as flips,
    which the ranking already uses (experiments/SPLIT_SIGNALS.md: AUC 0.90 to 1.00 against
    0.93 to 1.00 at 1 point). At 0.25 point, where one test example decides, neither did
    better than chance (0.42 to 0.53 against 0.50 to 0.59), except on 10 configurations of
    the CNN with outliers (1.00 against 0.92).

    Args:
        answers: The candidate's answers (``score_and_answers``).
        float_answers: The float model's answers on the same data.

    Returns:
        The SQNR in dB, or None where ``count_flips`` has no count.
    """
    if answers is None or float_answers is None or not _same_order(answers, float_answers):
        return None
    if answers.scores.shape != float_answers.scores.shape:
        return None
    return sqnr_db(float_answers.scores, answers.scores)


def sqnr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of ``other`` against ``reference``, in dB."""
    reference, other = reference.double(), other.double()
    noise = (reference - other).pow(2).sum().item()
    signal = reference.pow(2).sum().item()
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf


def serialized_size(model: nn.Module) -> int:
    """Bytes of the model's state_dict as torch.save writes it (packed weights included)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def example_batch(data: Iterable, batch_size: int, task: Any = None) -> Any:
    """Model inputs of exactly ``batch_size`` examples taken from ``data`` (through the task's
    adapter): the user's own inputs, sequence length and all. Batches shaped like the first
    are joined, cycling through the data if it is short."""
    adapter = DEFAULT_ADAPTER if task is None else _scoring(task).adapter
    pieces, count, signature = [], 0, None
    while count < batch_size:
        before = count
        for batch in data:
            x = adapter.inputs(batch)
            signature = signature or shape_signature(x)
            if shape_signature(x) != signature:
                continue  # another sequence length: cannot be joined with the first batch
            pieces.append(x)
            count += batch_length(x)
            if count >= batch_size:
                break
        if count == before:
            raise DataError("The evaluation data is empty: no batch to time the model on.")
    return map_tensors(concat(pieces), lambda t: canonical(t[:batch_size]))


@dataclasses.dataclass(frozen=True)
class Timing:
    median_ms: float
    spread_ms: float  # interquartile range


@torch.no_grad()
def measure_latency(
    models: dict[str, nn.Module],
    example: Any,
    threads: int,
    *,
    budget_s: float = 1.0,
    min_rounds: int = 7,
    max_rounds: int = 50,
) -> dict[str, Timing]:
    """Per-call latency of each model, timed in alternation so noise hits all of them alike.

    Each model is warmed up, then rounds run every model once (order rotated each round) until
    ``budget_s`` seconds of timing per model or ``max_rounds``. Calls that are too short for the
    clock are repeated inside one sample.

    Every sample follows an untimed call of the same model: a deployed model serves call after
    call, with its weights in cache, while the other models' calls between its samples would
    evict them. Measured on resnet18 at batch 1: timed cold, float ran 12.4 ms and its static
    int8 models 1.46 ms (fbgemm) to 1.64 ms (x86), a 12% gap between engines; timed warm,
    10.4 ms and 0.98 ms for both.
    """
    names = list(models)
    example = map_tensors(example, canonical)  # the strides compiled models were compiled for
    # Time the bare quantized module with its engine set once, as it would be deployed; the
    # QuantizedModel wrapper's per-call engine switch would otherwise be counted against it.
    backends = {m.config.backend for m in models.values() if isinstance(m, QuantizedModel)}
    # (Compiled when the model is deployed compiled: ``deployed``.)
    models = {n: m.deployed if isinstance(m, QuantizedModel) else m for n, m in models.items()}
    engine = quantized_engine(backends.pop()) if len(backends) == 1 else contextlib.nullcontext()
    # inductor_settings: a compiled model whose Dynamo cache was cleared compiles again on its
    # warm-up call, with the settings (and threads) it was first compiled with.
    with torch_threads(threads), engine, inductor_settings(threads):
        inner = {}
        for name in names:
            start = time.perf_counter()
            call(models[name], example)  # warm-up; also sizes the inner loop
            call(models[name], example)
            once = max((time.perf_counter() - start) / 2, 1e-6)
            inner[name] = max(1, int(0.002 / once))
        samples: dict[str, list[float]] = {name: [] for name in names}
        spent = 0.0
        rounds = 0
        while rounds < max_rounds and (rounds < min_rounds or spent < budget_s * len(names)):
            order = names[rounds % len(names) :] + names[: rounds % len(names)]
            for name in order:
                warm = time.perf_counter()
                call(models[name], example)  # untimed: brings its weights back into cache
                start = time.perf_counter()
                for _ in range(inner[name]):
                    call(models[name], example)
                elapsed = time.perf_counter() - start
                spent += time.perf_counter() - warm
                samples[name].append(elapsed / inner[name] * 1000)
            rounds += 1
    result = {}
    for name, values in samples.items():
        quartiles = statistics.quantiles(values, n=4)
        result[name] = Timing(statistics.median(values), quartiles[2] - quartiles[0])
    return result


def timed_models(
    model: nn.Module,
    float_model: nn.Module,
    example: Any,
    scenario: Scenario,
    compiled_float: nn.Module | None = None,
) -> tuple[dict[str, nn.Module], nn.Module | None]:
    """The models one candidate is timed with: ``float`` (eager), ``candidate``, and
    ``compiled float`` when the candidate is deployed compiled or the scenario's baseline is
    compiled float, so every speedup is against the same baseline and, where compile is
    involved, against compiled float as well.

    A candidate deployed through torch.compile (``QuantizedModel.needs_compile``) is compiled
    here on ``example`` if it is not yet. ``compiled_float`` is reused when given (compiled on
    the same example's shape); returns the models and the compiled float (or None).
    """
    compiled = isinstance(model, QuantizedModel) and model.needs_compile
    if compiled and model.compiled is None:
        model.compile(example, threads=scenario.threads)
    models = {"float": float_model, "candidate": model}
    if compiled or scenario.baseline == "compiled":
        if compiled_float is None:
            compiled_float, _ = compile_module(float_model, example, threads=scenario.threads)
        models["compiled float"] = compiled_float
    return models, compiled_float


@dataclasses.dataclass(frozen=True)
class Metrics:
    """What one candidate measured, against the float model in the same run.

    ``accuracy`` is the task metric's score (any metric, not only accuracy); ``drop_points``
    its drop on the budget's scale: points (hundredths) of a [0, 1] metric, the metric's own
    units otherwise, positive when worse whichever way the metric points;
    ``speedup`` is float latency / candidate latency (above 1 is faster), where the float
    model is the scenario's baseline, ``reference``: ``float`` (eager) or ``compiled float``.
    Where compile is involved (the candidate or the baseline is compiled) both figures are
    kept: ``speedup_vs_eager`` and ``speedup_vs_compiled``. ``compile_seconds`` is what the
    candidate's first compilation took. ``flips`` counts the examples whose top-1 class differs
    from the float model's (``count_flips``; None unless the task is single-label
    classification and the data came in the same order), and ``output_sqnr_db`` how closely
    its class scores follow float's (``output_sqnr``; None where ``flips`` is).
    """

    accuracy: float
    float_accuracy: float
    drop_points: float
    drop_relative: float
    latency_ms: float
    latency_spread_ms: float
    float_latency_ms: float
    speedup: float
    size_bytes: int
    float_size_bytes: int
    size_ratio: float
    scenario: str
    compile_seconds: float = 0.0
    reference: str = "float"
    speedup_vs_eager: float | None = None
    speedup_vs_compiled: float | None = None
    flips: int | None = None
    output_sqnr_db: float | None = None
    metric: str = "top1"  # the task's metric ``accuracy`` holds
    bounded: bool = True  # whether it lies in [0, 1] (``drop_points`` then in points)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def make_metrics(
    accuracy: float,
    float_accuracy: float,
    timings: dict[str, Timing],
    size_bytes: int,
    float_size_bytes: int,
    scenario: Scenario,
    *,
    metric: Metric,
    compile_seconds: float = 0.0,
    flips: int | None = None,
    output_sqnr_db: float | None = None,
) -> Metrics:
    """Metrics from ``timings`` of ``float``, ``candidate`` and (optionally) ``compiled
    float``; the speedup is against the scenario's baseline, the drop on ``metric``'s scale."""
    candidate = timings["candidate"].median_ms
    baseline = timings[scenario.reference].median_ms
    compiled = timings.get("compiled float")
    return Metrics(
        accuracy=accuracy,
        float_accuracy=float_accuracy,
        drop_points=metric.drop(float_accuracy, accuracy),
        drop_relative=metric.relative_drop(float_accuracy, accuracy),
        latency_ms=candidate,
        latency_spread_ms=timings["candidate"].spread_ms,
        float_latency_ms=baseline,
        speedup=baseline / candidate,
        size_bytes=size_bytes,
        float_size_bytes=float_size_bytes,
        size_ratio=size_bytes / float_size_bytes,
        scenario=scenario.name,
        compile_seconds=compile_seconds,
        reference=scenario.reference,
        speedup_vs_eager=timings["float"].median_ms / candidate if compiled else None,
        speedup_vs_compiled=compiled.median_ms / candidate if compiled else None,
        flips=flips,
        output_sqnr_db=output_sqnr_db,
        metric=metric.name,
        bounded=metric.bounded,
    )


def evaluate(
    model: nn.Module,
    float_model: nn.Module,
    data: Iterable,
    task: Any,
    scenario: Scenario = SCENARIOS["bs1-t1"],
    *,
    float_accuracy: float | None = None,
    float_answers: Answers | None = None,
    float_size_bytes: int | None = None,
) -> Metrics:
    """Measure ``model`` against ``float_model`` on ``data`` under ``scenario``.

    ``float_accuracy`` with ``float_answers``, and ``float_size_bytes``, may be passed when
    already known (``score_and_answers`` of the float model on ``data``: a study measures
    float once); without both of the first two, float is scored here. Latency is always
    timed again, interleaved. ``task`` is the Task (or a metric, for batches read by their
    structure).
    """
    task = _scoring(task)
    if float_accuracy is None or float_answers is None:
        float_accuracy, float_answers = score_and_answers(float_model, data, task)
    if float_size_bytes is None:
        float_size_bytes = serialized_size(float_model)
    example = example_batch(data, scenario.batch_size, task)
    models, _ = timed_models(model, float_model, example, scenario)
    accuracy, answers = score_and_answers(model, data, task)
    timings = measure_latency(models, example, scenario.threads)
    return make_metrics(
        accuracy,
        float_accuracy,
        timings,
        serialized_size(model),
        float_size_bytes,
        scenario,
        metric=task.metric,
        compile_seconds=getattr(model, "compile_seconds", 0.0),
        flips=count_flips(answers, float_answers),
        output_sqnr_db=output_sqnr(answers, float_answers),
    )
