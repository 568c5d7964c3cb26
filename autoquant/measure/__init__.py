"""Measuring candidates against the float model: score, drop, latency, size.

Owns: scenarios (``scenario``), scoring through the task's adapter with flips and output SQNR
(``scoring``), interleaved latency (``latency``), the ``Metrics`` of one candidate
(``result``), and ``measure()`` with the ``FloatReference`` it compares with (``compare``),
which every caller uses to score and time a candidate. It may import the engine (config,
quantized model, compile, backends), ``data`` and ``tasks.metrics``; nothing that searches,
recommends, tracks or reports.
"""

from autoquant.measure.compare import (
    FINAL_TIMING,
    QUICK_TIMING,
    TRIAL_TIMING,
    FloatReference,
    Scored,
    TimingPlan,
    measure,
)
from autoquant.measure.latency import Timing, example_batch, measure_latency, torch_threads
from autoquant.measure.result import Metrics, make_metrics, serialized_size
from autoquant.measure.scenario import BASELINES, SCENARIOS, Scenario, get_scenario
from autoquant.measure.scoring import (
    Answers,
    checked_value,
    count_flips,
    output_sqnr,
    predict,
    predicted_answers,
    score,
    score_and_answers,
    score_outputs,
    sqnr_db,
)

__all__ = [
    "BASELINES",
    "FINAL_TIMING",
    "QUICK_TIMING",
    "SCENARIOS",
    "TRIAL_TIMING",
    "Answers",
    "FloatReference",
    "Metrics",
    "Scenario",
    "Scored",
    "Timing",
    "TimingPlan",
    "checked_value",
    "count_flips",
    "example_batch",
    "get_scenario",
    "make_metrics",
    "measure",
    "measure_latency",
    "output_sqnr",
    "predict",
    "predicted_answers",
    "score",
    "score_and_answers",
    "score_outputs",
    "serialized_size",
    "sqnr_db",
    "torch_threads",
]
