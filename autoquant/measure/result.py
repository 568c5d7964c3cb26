"""Metrics: what one candidate measured against the float model in the same run."""

from __future__ import annotations

import dataclasses
import io

import torch
from torch import nn

from autoquant.measure.latency import Timing
from autoquant.measure.machine import is_busy, load_average
from autoquant.measure.scenario import Scenario
from autoquant.measure.uncertainty import DropInterval, speedup_interval
from autoquant.tasks.metrics import Metric


def serialized_size(model: nn.Module) -> int:
    """Bytes of the model's state_dict as torch.save writes it (packed weights included)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


@dataclasses.dataclass(frozen=True)
class Metrics:
    """What one candidate measured, against the float model in the same run.

    ``accuracy`` is the task metric's score (any metric, not only accuracy); ``drop_points``
    its drop on the budget's scale: points (hundredths) of a [0, 1] metric, the metric's own
    units otherwise, positive when worse whichever way the metric points;
    ``speedup`` is float latency / candidate latency (above 1 is faster), where the float
    model is the scenario's baseline, ``reference``: ``float`` (eager) or ``compiled float``.
    Where compile is involved (the candidate or the baseline is compiled) both figures are
    kept: ``speedup_vs_eager`` and ``speedup_vs_compiled``; a candidate that runs in ONNX
    Runtime also has ``speedup_vs_onnx_float``, against the float model in ONNX Runtime, timed
    in the same interleaved run. ``compile_seconds`` is what the
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
    speedup_vs_onnx_float: float | None = None
    flips: int | None = None
    output_sqnr_db: float | None = None
    metric: str = "top1"  # the task's metric ``accuracy`` holds
    bounded: bool = True  # whether it lies in [0, 1] (``drop_points`` then in points)
    # the 95 % interval of ``drop_points`` from the examples (``measure.uncertainty``; None
    # where it cannot be had: an ``eval_fn``, or answers in another order), the examples it
    # came from, and for top-1 McNemar's exact p-value on the changed answers
    drop_ci_low: float | None = None
    drop_ci_high: float | None = None
    drop_ci_examples: int | None = None
    mcnemar_p: float | None = None
    # confidence mode (``SearchOptions.confidence``): the one-sided upper bound of the drop at
    # that confidence, which feasibility is then judged by (``Budget.violation``)
    drop_upper: float | None = None
    drop_upper_confidence: float | None = None
    # the 95 % interval of ``speedup`` from the interleaved timing's rounds (None when too few)
    speedup_ci_low: float | None = None
    speedup_ci_high: float | None = None
    # how busy the machine was while it was timed (``measure.machine``): the share of time this
    # process's threads waited for a core, and the one-minute load average after
    cpu_wait_share: float | None = None
    load_average: float | None = None

    @property
    def timed_busy(self) -> bool:
        """Whether other work competed for the cores while it was timed."""
        return is_busy(self.cpu_wait_share)

    def drop_interval_text(self) -> str:
        """``95 % CI -0.19 to 0.56 pt on 540 examples``, or a note that there is none."""
        if self.drop_ci_low is None:
            return "no interval (the score is not per example)"
        unit = " pt" if self.bounded else ""
        return (
            f"95 % CI {self.drop_ci_low:.2f} to {self.drop_ci_high:.2f}{unit} on "
            f"{self.drop_ci_examples} examples"
        )

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
    interval: DropInterval | None = None,
    upper: DropInterval | None = None,
) -> Metrics:
    """Metrics from ``timings`` of ``float``, ``candidate`` and (optionally) ``compiled
    float`` and ``onnx float``; the speedup is against the scenario's baseline, the drop on
    ``metric``'s scale."""
    candidate = timings["candidate"].median_ms
    baseline = timings[scenario.reference].median_ms
    compiled = timings.get("compiled float")
    onnx = timings.get("onnx float")
    speedups = speedup_interval(
        timings[scenario.reference].samples_ms, timings["candidate"].samples_ms
    )
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
        speedup_vs_onnx_float=onnx.median_ms / candidate if onnx else None,
        flips=flips,
        output_sqnr_db=output_sqnr_db,
        metric=metric.name,
        bounded=metric.bounded,
        drop_ci_low=interval.low if interval else None,
        drop_ci_high=interval.high if interval else None,
        drop_ci_examples=interval.examples if interval else None,
        mcnemar_p=interval.mcnemar_p if interval else None,
        speedup_ci_low=speedups[0] if speedups else None,
        speedup_ci_high=speedups[1] if speedups else None,
        cpu_wait_share=timings["candidate"].waited_share,
        load_average=load_average(),
        drop_upper=upper.high if upper else None,
        drop_upper_confidence=(1 + upper.confidence) / 2 if upper else None,
    )
