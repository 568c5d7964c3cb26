"""How sure a drop is: a confidence interval from the examples measured, and for top-1
answers McNemar's exact test on the examples that changed.

A drop measured on N examples is an estimate: on 540 digits one example is 0.19 point, and a
configuration that changes three answers may lose or gain a point on the next 540. The interval
says how far the drop on new data from the same source could plausibly lie.

- top-1 against targets: Tango's score interval for a difference of paired proportions
  (Tango 1998), which keeps its coverage when few answers change, where a bootstrap of a
  handful of flips collapses to a point (and no change at all still leaves +-z^2/(n+z^2));
- agreement with float (label-free top-1): Wilson's interval on the share of answers kept;
- metrics that average a value per example (``Metric.per_example``: top-5, cosine, MSE): a
  paired bootstrap of the mean difference;
- any other metric computed from outputs (F1, a user's callable): a paired bootstrap that
  recomputes the metric on each resample of the examples;
- outputs identical to float's on every example (float itself): the interval is 0 to 0;
- a task's ``eval_fn`` gives one number, not the examples: no interval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from scipy.stats import binomtest, norm

from autoquant.measure.scoring import Answers, same_order
from autoquant.tasks.metrics import Metric, agreement, top1

#: The confidence of the intervals autoquant reports.
DEFAULT_CONFIDENCE = 0.95
#: Resamples of a bootstrap interval (its percentiles move by about 0.1 of its width between
#: two seeds at this count).
RESAMPLES = 1000


@dataclasses.dataclass(frozen=True)
class DropInterval:
    """A confidence interval on a drop, in the drop's units (points of a [0, 1] metric).

    Attributes:
        low: Lower bound (negative: the candidate may be better than float).
        high: Upper bound.
        confidence: Its nominal coverage, e.g. 0.95.
        examples: The examples it was computed from.
        method: ``tango``, ``wilson``, ``bootstrap`` or ``identical``.
        worse: Examples float answered right and the candidate wrong (top-1 only).
        better: Examples the candidate answered right and float wrong (top-1 only).
        mcnemar_p: McNemar's exact two-sided p-value that the candidate is no worse and no
            better than float on such examples (top-1 only; 1.0 when no answer changed).
    """

    low: float
    high: float
    confidence: float
    examples: int
    method: str
    worse: int | None = None
    better: int | None = None
    mcnemar_p: float | None = None


def mcnemar_exact(worse: int, better: int) -> float:
    """McNemar's exact two-sided p-value for ``worse`` against ``better`` changed answers."""
    changed = worse + better
    return 1.0 if changed == 0 else float(binomtest(worse, changed, 0.5).pvalue)


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    z = norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def tango_paired(worse: int, better: int, n: int, confidence: float) -> tuple[float, float]:
    """Tango's score interval (1998) for the difference of two paired proportions: float's
    accuracy minus the candidate's, from the examples only float answered right (``worse``)
    and only the candidate did (``better``) among ``n``. When no answer changed it is
    +-z^2 / (n + z^2), not a point: changes may lie where no example showed them."""
    z = float(norm.ppf(0.5 + confidence / 2))
    estimate = (worse - better) / n

    def statistic(delta: float) -> float:
        # the restricted maximum-likelihood rate of "better" changes given a difference delta
        a = 2 * n
        b = -worse - better + (2 * n - worse + better) * delta
        c = -better * delta * (1 - delta)
        q = (math.sqrt(max(0.0, b * b - 4 * a * c)) - b) / (2 * a)
        variance = n * (2 * q + delta * (1 - delta))
        return (worse - better - n * delta) / math.sqrt(variance) if variance > 0 else 0.0

    def bound(low: float, high: float, inside_at_low: bool) -> float:
        for _ in range(60):  # bisection to well below a hundredth of a point
            middle = (low + high) / 2
            inside = abs(statistic(middle)) <= z
            if inside == inside_at_low:
                low = middle
            else:
                high = middle
        return (low + high) / 2

    lower = -1.0 if abs(statistic(-1.0 + 1e-12)) <= z else bound(-1.0, estimate, False)
    upper = 1.0 if abs(statistic(1.0 - 1e-12)) <= z else bound(estimate, 1.0, True)
    return lower, upper


def drop_interval(
    outputs: torch.Tensor,
    float_outputs: torch.Tensor,
    targets: torch.Tensor | None,
    metric: Metric,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> DropInterval | None:
    """The interval on ``metric.drop`` from float's to the candidate's score on the same
    examples, in the same order (see the module's docstring for the method used).

    Args:
        outputs: The candidate's outputs, one row per example.
        float_outputs: The float model's outputs on the same examples.
        targets: The targets (None for a label-free metric).
        metric: The task's metric.
        confidence: The interval's nominal coverage.
        resamples: Bootstrap resamples (where a bootstrap is used).
        seed: The bootstrap's seed: the same inputs give the same interval.

    Returns:
        The interval, or None when it cannot be computed: no metric function (``eval_fn``),
        fewer than two examples, or outputs that do not pair up.
    """
    n = len(outputs)
    if metric.fn is None or n < 2 or len(float_outputs) != n:
        return None
    reference = float_outputs if metric.label_free else targets
    if reference is None or len(reference) != n:
        return None
    scale = 100.0 if metric.bounded else 1.0
    if torch.equal(outputs, float_outputs):
        # the float model itself (or a copy computing the same): no drop to be unsure of,
        # where a statistical interval would still allow for changes no example showed
        return DropInterval(0.0, 0.0, confidence, n, "identical", 0, 0, 1.0)
    if metric.fn is top1 and _is_classification(outputs, targets):
        float_right = float_outputs.argmax(dim=-1) == targets
        right = outputs.argmax(dim=-1) == targets
        worse = int((float_right & ~right).sum())
        better = int((~float_right & right).sum())
        low, high = tango_paired(worse, better, n, confidence)
        return DropInterval(
            scale * low, scale * high, confidence, n, "tango", worse, better,
            mcnemar_exact(worse, better),
        )  # fmt: skip
    if metric.fn is agreement and outputs.dim() == 2:
        kept = int((outputs.argmax(dim=-1) == float_outputs.argmax(dim=-1)).sum())
        low, high = wilson(kept, n, confidence)
        worse = n - kept
        return DropInterval(
            scale * (1 - high), scale * (1 - low), confidence, n, "wilson", worse, 0,
            mcnemar_exact(worse, 0),
        )  # fmt: skip
    low, high = _bootstrap(outputs, float_outputs, reference, metric, confidence, resamples, seed)
    return DropInterval(low, high, confidence, n, "bootstrap")


#: The confidence the resolution check asks a budget to be held with.
RESOLUTION_CONFIDENCE = 0.9


def examples_needed(budget_points: float, confidence: float = RESOLUTION_CONFIDENCE) -> int:
    """The examples on which a configuration that changes no top-1 answer has the one-sided
    upper bound of its drop (``tango_paired``: z^2 / (n + z^2)) within ``budget_points``:
    the fewest that can vouch for the budget at all."""
    if budget_points <= 0:
        return math.inf
    share = min(budget_points / 100, 1.0)
    z = float(norm.ppf(confidence))
    return max(1, math.ceil(z * z * (1 - share) / share))


def resolution_warning(
    examples: int, budget_points: float, budget: str, unit_scale: float = 1.0
) -> str:
    """What to tell a user whose top-1 budget is finer than ``examples`` validation examples
    can resolve, or "" when they can (``examples_needed``). ``budget_points`` is the budget
    in points, ``budget`` as the user wrote it; ``unit_scale`` turns points into the
    budget's unit (1 / float's score for a relative budget)."""
    needed = examples_needed(budget_points)
    if not examples or examples >= needed:
        return ""
    one = 100 / examples * unit_scale
    unit = "pt" if unit_scale == 1.0 else "%"
    size = (
        f"finer than one validation example ({one:.2f}{unit}, 1 of {examples})"
        if budget_points < 100 / examples
        else f"{budget_points / (100 / examples):.1f} validation examples ({one:.2f}{unit} each)"
    )
    return (
        f"The budget {budget} is {size}: to hold it with "
        f"{100 * RESOLUTION_CONFIDENCE:.0f} % confidence even a configuration that changes no "
        f"answer needs about {needed} validation examples. With {examples}, a drop within the "
        f"budget on this data says little about new data, where a difference of an example or "
        f"two is chance. Give more validation data, allow a wider budget, or judge by the "
        f"drop's upper bound (--confidence)."
    )


def answers_interval(
    answers: Answers | None,
    float_answers: Answers | None,
    metric: Metric,
    confidence: float = DEFAULT_CONFIDENCE,
) -> DropInterval | None:
    """``drop_interval`` of a candidate's answers (``score_and_answers``) against float's on
    the same data; None where flips are not counted either (no answers, another order)."""
    if answers is None or float_answers is None or not same_order(answers, float_answers):
        return None
    return drop_interval(
        answers.scores, float_answers.scores, answers.targets, metric, confidence=confidence
    )


def speedup_interval(
    baseline_ms: Sequence[float],
    candidate_ms: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """The interval of a speedup (the baseline's median latency over the candidate's) from
    the rounds of one interleaved timing: a bootstrap over rounds, each round's two samples
    kept together, since noise in a round hit both. None with fewer than 3 paired rounds."""
    rounds = min(len(baseline_ms), len(candidate_ms))
    if rounds < 3:
        return None
    baseline = torch.tensor(baseline_ms[:rounds], dtype=torch.float64)
    candidate = torch.tensor(candidate_ms[:rounds], dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(rounds, (resamples, rounds), generator=generator)
    ratios = baseline[rows].median(dim=1).values / candidate[rows].median(dim=1).values
    tail = (1 - confidence) / 2
    low, high = torch.quantile(ratios, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(low), float(high)


def _is_classification(outputs: torch.Tensor, targets: torch.Tensor | None) -> bool:
    return (
        targets is not None
        and outputs.dim() == 2
        and targets.dim() == 1
        and not targets.is_floating_point()
    )


def _bootstrap(outputs, float_outputs, reference, metric, confidence, resamples, seed):
    """Percentile interval of the drop over resamples of the examples, float and candidate
    always on the same resample (paired)."""
    n = len(outputs)
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(n, (resamples, n), generator=generator)
    if metric.per_example is not None:
        # the metric is a mean over examples: resample the per-example differences at once
        difference = (
            metric.per_example(float_outputs, reference).double()
            - metric.per_example(outputs, reference).double()
        )
        means = difference[rows].mean(dim=1)
        sign = 1.0 if metric.higher_is_better else -1.0
        drops = sign * means * (100.0 if metric.bounded else 1.0)
    else:
        drops = torch.tensor(
            [
                metric.drop(
                    metric.fn(float_outputs[row], reference[row]),
                    metric.fn(outputs[row], reference[row]),
                )
                for row in rows
            ],
            dtype=torch.float64,
        )
    tail = (1 - confidence) / 2
    low, high = torch.quantile(drops, torch.tensor([tail, 1 - tail], dtype=torch.float64))
    return float(low), float(high)


__all__ = [
    "DEFAULT_CONFIDENCE",
    "RESOLUTION_CONFIDENCE",
    "examples_needed",
    "resolution_warning",
    "speedup_interval",
    "DropInterval",
    "answers_interval",
    "drop_interval",
    "mcnemar_exact",
    "tango_paired",
    "wilson",
]
