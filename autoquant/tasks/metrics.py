"""Metrics by name, and the one drop formula every measurement uses.

A metric scores a model's outputs against a reference: the data's targets (``top1``, ``top5``,
``f1_macro``) or, label-free, the float model's own outputs on the same examples
(``agreement``, ``cosine``, ``mse``), so a user with unlabelled samples can still search under a
fidelity budget. Budgets are on the metric's scale: points (hundredths) for metrics in [0, 1],
the metric's own units otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from autoquant.errors import ConfigError

#: What a metric compares the outputs with.
REFERENCES = ("targets", "float")


@dataclasses.dataclass(frozen=True)
class Metric:
    """A score of a model's outputs.

    Attributes:
        name: Its name in reports and MLflow.
        fn: ``fn(outputs, reference) -> float`` over the concatenated outputs of a data set,
            where ``reference`` is the targets or the float model's outputs (``reference``).
            None when the task's ``eval_fn`` does the scoring (the metric then names it and
            gives its direction and scale).
        higher_is_better: Whether a larger value is better (accuracy) or worse (an error).
        reference: ``"targets"`` (scored against the data's targets) or ``"float"``
            (label-free: against the float model's outputs).
        bounded: Whether the value lies in [0, 1]; a budget is then in points (1pt = 0.01),
            otherwise in the metric's own units. A bounded metric's value is checked.
        per_example: ``per_example(outputs, reference) -> tensor`` of one value per example
            whose mean is ``fn``'s value, when the metric is such a mean (top-1, cosine): its
            confidence interval is then a fast paired bootstrap of those values. None for
            metrics of the whole set (F1); their interval recomputes ``fn`` per resample.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], float] | None = None
    higher_is_better: bool = True
    reference: str = "targets"
    bounded: bool = True
    per_example: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ConfigError(
                f"The 'reference' parameter of Metric must be one of {list(REFERENCES)}. "
                f"Got {self.reference!r} instead."
            )
        if self.fn is not None and not callable(self.fn):
            raise ConfigError(
                f"The 'fn' parameter of Metric must be a callable (outputs, reference) -> float "
                f"or None. Got {type(self.fn).__name__} instead."
            )

    @property
    def label_free(self) -> bool:
        return self.reference == "float"

    @property
    def unit(self) -> str:
        """What a drop of 1 is called: a point of a [0, 1] metric, or a unit of the metric."""
        return "pt" if self.bounded else ""

    def drop(self, float_score: float, score: float) -> float:
        """How much worse ``score`` is than ``float_score``, on the budget's absolute scale:
        in points for a bounded metric, in its own units otherwise. Negative when better.
        The one place the drop is computed."""
        worse = float_score - score if self.higher_is_better else score - float_score
        return 100 * worse if self.bounded else worse

    def relative_drop(self, float_score: float, score: float) -> float:
        """The drop as a share of the float score (0 when the float score is 0)."""
        worse = float_score - score if self.higher_is_better else score - float_score
        return worse / abs(float_score) if float_score else 0.0


def top1_each(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 for each example whose highest-scoring class is the target, else 0."""
    return (outputs.argmax(dim=-1) == targets).float()


def top1(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of examples whose highest-scoring class is the target."""
    return top1_each(outputs, targets).mean().item()


def top5_each(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 for each example whose target is among its five highest-scoring classes."""
    k = min(5, outputs.shape[-1])
    best = outputs.topk(k, dim=-1).indices
    return (best == targets.unsqueeze(-1)).any(dim=-1).float()


def top5(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of examples whose target is among the five highest-scoring classes."""
    return top5_each(outputs, targets).mean().item()


def f1_macro(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """F1 score averaged over the classes present in the targets or the answers."""
    predicted = outputs.argmax(dim=-1).flatten()
    targets = targets.flatten()
    scores = []
    for c in torch.unique(torch.cat([predicted, targets])):
        tp = ((predicted == c) & (targets == c)).sum().item()
        fp = ((predicted == c) & (targets != c)).sum().item()
        fn = ((predicted != c) & (targets == c)).sum().item()
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    return sum(scores) / len(scores)


def agreement_each(outputs: torch.Tensor, float_outputs: torch.Tensor) -> torch.Tensor:
    """1 for each example whose top-1 class is the float model's, else 0."""
    return (outputs.argmax(dim=-1) == float_outputs.argmax(dim=-1)).float()


def agreement(outputs: torch.Tensor, float_outputs: torch.Tensor) -> float:
    """Share of examples whose top-1 class is the float model's (label-free top-1)."""
    return agreement_each(outputs, float_outputs).mean().item()


def cosine_each(outputs: torch.Tensor, float_outputs: torch.Tensor) -> torch.Tensor:
    """Each example's cosine similarity to the float model's output, clamped to [0, 1]."""
    a = outputs.flatten(1).double() if outputs.dim() > 1 else outputs.double()[:, None]
    b = float_outputs.flatten(1).double() if outputs.dim() > 1 else float_outputs.double()[:, None]
    similarity = torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-12)
    return similarity.clamp(0.0, 1.0)


def cosine(outputs: torch.Tensor, float_outputs: torch.Tensor) -> float:
    """Mean cosine similarity of each example's output to the float model's, clamped to
    [0, 1] (an output pointing away from float's scores as badly as an orthogonal one)."""
    return cosine_each(outputs, float_outputs).mean().item()


def mse_each(outputs: torch.Tensor, float_outputs: torch.Tensor) -> torch.Tensor:
    """Each example's mean squared difference from the float model's output."""
    difference = (outputs.double() - float_outputs.double()).pow(2)
    return difference.flatten(1).mean(dim=1) if difference.dim() > 1 else difference


def mse(outputs: torch.Tensor, float_outputs: torch.Tensor) -> float:
    """Mean squared difference from the float model's outputs (lower is better)."""
    return (outputs.double() - float_outputs.double()).pow(2).mean().item()


#: Built-in metrics by name.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("top1", top1, per_example=top1_each),
        Metric("top5", top5, per_example=top5_each),
        Metric("f1_macro", f1_macro),
        Metric("agreement", agreement, reference="float", per_example=agreement_each),
        Metric("cosine", cosine, reference="float", per_example=cosine_each),
        Metric(
            "mse",
            mse,
            higher_is_better=False,
            reference="float",
            bounded=False,
            per_example=mse_each,
        ),  # fmt: skip
    ]
}


def get_metric(metric: str | Metric | Callable) -> Metric:
    """A metric by name, a Metric, or a user callable ``(outputs, targets) -> float`` in
    [0, 1], higher is better (wrap it in ``Metric`` for another direction or scale)."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ConfigError(
                f"The 'metric' parameter must be one of {list(METRICS)}, a Metric or a "
                f"callable. Got {metric!r} instead."
            )
        return METRICS[metric]
    if callable(metric):
        name = getattr(metric, "__name__", type(metric).__name__)
        builtin = next((m for m in METRICS.values() if m.fn is metric), None)
        return builtin or Metric(name, metric)
    raise ConfigError(
        f"The 'metric' parameter must be one of {list(METRICS)}, a Metric or a callable "
        f"(outputs, targets) -> float. Got {type(metric).__name__} instead."
    )
