"""Budget: how much of the metric a quantized model may lose against the float model."""

from __future__ import annotations

import dataclasses
import re

from autoquant._validation import check_bool, check_float
from autoquant.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Budget:
    """The largest drop allowed, in points (hundredths of the [0, 1] metric) or percent.

    ``Budget(1.0)`` allows 97.0% -> 96.0% accuracy; ``Budget(1.0, relative=True)`` allows losing
    1% of the float score (97.0% -> 96.03%).
    """

    max_drop: float = 1.0
    relative: bool = False

    def __post_init__(self) -> None:
        check_float("Budget", "max_drop", self.max_drop, low=0.0, high=100.0)
        check_bool("Budget", "relative", self.relative)

    @classmethod
    def parse(cls, text: str | float | Budget) -> Budget:
        """``"1pt"`` (absolute points), ``"1%"`` (relative) or a number (points)."""
        if isinstance(text, Budget):
            return text
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls(float(text))
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(pt|pts|points?|%)?\s*", str(text))
        if not match:
            raise ConfigError(
                f"The 'budget' parameter must be a drop like '1pt' (absolute points) or '1%' "
                f"(relative to the float score). Got {text!r} instead."
            )
        return cls(float(match.group(1)), relative=match.group(2) == "%")

    def drop(self, metrics) -> float:
        """The drop of ``metrics`` in this budget's unit."""
        return 100 * metrics.drop_relative if self.relative else metrics.drop_points

    def drop_between(self, metric, reference: float, value: float) -> float:
        """The drop from the score ``reference`` to ``value`` on ``metric`` (a
        ``autoquant.tasks.metrics.Metric``, which owns the formula) in this budget's unit."""
        if self.relative:
            return 100 * metric.relative_drop(reference, value)
        return metric.drop(reference, value)

    def upper_drop(self, metrics) -> float | None:
        """The upper confidence bound of the drop of ``metrics`` in this budget's unit, when
        the measurement was made in confidence mode (``drop_upper`` set), else None."""
        upper = getattr(metrics, "drop_upper", None)
        if upper is None:
            return None
        return self.from_points(upper, metrics.float_accuracy, bounded=metrics.bounded)

    def from_points(self, points: float, float_score: float, *, bounded: bool) -> float:
        """A drop in points (the unit intervals are computed in: 100x the score's loss for a
        [0, 1] metric, the loss itself otherwise) in this budget's unit, from a float
        score of ``float_score``."""
        if not self.relative:
            return points
        loss = points / 100 if bounded else points
        return 100 * loss / abs(float_score) if float_score else 0.0

    def violation(self, metrics) -> float:
        """Drop beyond the budget (<= 0 when within it), in the budget's unit: in confidence
        mode, the drop's upper confidence bound beyond it (``upper_drop``)."""
        upper = self.upper_drop(metrics)
        return (self.drop(metrics) if upper is None else upper) - self.max_drop

    def __str__(self) -> str:
        return f"{self.max_drop:g}%" if self.relative else f"{self.max_drop:g}pt"
