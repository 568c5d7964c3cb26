"""Scoring: a model's metric on data read through the task's adapter, and how its answers
differ from the float model's (flips, output SQNR)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
from torch import nn

from autoquant.engine.data import DEFAULT_ADAPTER, Adapter, check_reiterable
from autoquant.errors import ConfigError, DataError
from autoquant.tasks.metrics import Metric, get_metric


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


def same_order(answers: Answers, float_answers: Answers) -> bool:
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
    if answers is None or float_answers is None or not same_order(answers, float_answers):
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
    if answers is None or float_answers is None or not same_order(answers, float_answers):
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
