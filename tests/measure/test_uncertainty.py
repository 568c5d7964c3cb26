"""Confidence intervals on drops: coverage at known flip rates, McNemar, real model outputs."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from autoquant.measure.scoring import predict
from autoquant.measure.uncertainty import (
    drop_interval,
    examples_needed,
    mcnemar_exact,
    resolution_warning,
    tango_paired,
)
from autoquant.tasks.metrics import METRICS, Metric, f1_macro


def test_mcnemar_matches_the_exact_binomial_by_hand_and_scipy():
    # 9 answers lost, 2 gained: p = 2 * P(X <= 2), X ~ Binomial(11, 1/2) = 2 * 67 / 2048
    assert mcnemar_exact(9, 2) == pytest.approx(2 * (1 + 11 + 55) / 2**11)
    # and as scipy computes it: the exact two-sided binomial test on the 11 changed answers
    assert mcnemar_exact(9, 2) == pytest.approx(binomtest(2, 11, 0.5).pvalue)
    assert mcnemar_exact(2, 9) == pytest.approx(mcnemar_exact(9, 2))
    assert mcnemar_exact(0, 0) == 1.0


@pytest.mark.parametrize(
    ("both", "worse", "better", "n"),
    [
        (0.90, 0.02, 0.01, 540),  # a 1-point drop on the digits' test split
        (0.80, 0.05, 0.02, 85),  # a small validation split
        (0.96, 0.004, 0.0, 540),  # about two flips: a bootstrap would collapse to a point
    ],
)
def test_the_top1_interval_covers_the_true_drop_at_about_its_level(both, worse, better, n):
    # 2000 draws of n examples from a population whose flip rates are known: the 95 % interval
    # must hold the true drop in about 95 % of them (measured: 94.3 %, 95.5 %, 99.3 %; the
    # score interval is conservative when almost nothing changes)
    rng = np.random.default_rng(0)
    true = worse - better
    draws = rng.multinomial(n, [both, worse, better, 1 - both - worse - better], size=2000)
    covered = [lo <= true <= hi for lo, hi in (tango_paired(d[1], d[2], n, 0.95) for d in draws)]
    assert 0.93 <= np.mean(covered) <= 1.0


def test_no_changed_answer_still_leaves_an_interval():
    # what n examples without a single change can say: +-z^2 / (n + z^2)
    low, high = tango_paired(0, 0, 270, 0.95)
    assert high == pytest.approx(1.959964**2 / (270 + 1.959964**2), rel=1e-4)
    assert low == pytest.approx(-high, rel=1e-4)


def test_the_bootstrap_interval_covers_a_continuous_drop():
    # cosine to float's outputs, 85 examples, 200 draws: measured coverage 94.5 % at 95 %
    torch.manual_seed(0)
    scale = lambda n: torch.rand(n, 1) * 0.5  # noqa: E731 - each example's own noise level
    big = torch.randn(200_000, 16)
    true = 100 * (1 - METRICS["cosine"].fn(big + torch.randn(200_000, 16) * scale(200_000), big))
    covered = []
    for seed in range(200):
        clean = torch.randn(85, 16)
        noisy = clean + torch.randn(85, 16) * scale(85)
        interval = drop_interval(noisy, clean, None, METRICS["cosine"], seed=seed)
        covered.append(interval.low <= true <= interval.high)
    assert 0.92 <= np.mean(covered) <= 1.0


def test_intervals_on_a_real_model_and_quantized_copy(mlp_task):
    from autoquant import QuantConfig

    data = mlp_task.validation_data
    quantized = mlp_task.build(QuantConfig(method="static_int8", backend="qnnpack"))
    float_out, targets = predict(mlp_task.model, data, mlp_task)
    out, _ = predict(quantized, data, mlp_task)
    metric = METRICS["top1"]
    interval = drop_interval(out, float_out, targets, metric)
    drop = metric.drop(metric.fn(float_out, targets), metric.fn(out, targets))
    assert interval.method == "tango" and interval.examples == len(targets)
    assert interval.low <= drop <= interval.high
    flips = int((out.argmax(1) != float_out.argmax(1)).sum())
    assert interval.worse + interval.better <= flips
    # the same outputs under other metrics: a bootstrap, recomputed for a set-level metric
    assert drop_interval(out, float_out, targets, METRICS["top5"]).method == "bootstrap"
    f1 = drop_interval(out, float_out, targets, Metric("f1", f1_macro), resamples=200)
    assert f1.method == "bootstrap" and f1.low <= f1.high
    assert drop_interval(out, float_out, None, METRICS["agreement"]).method == "wilson"
    # the same examples give the same interval; a scoring function alone gives none
    assert drop_interval(out, float_out, targets, METRICS["top5"]) == drop_interval(
        out, float_out, targets, METRICS["top5"]
    )
    assert drop_interval(out, float_out, targets, Metric("eval", None)) is None
    assert math.isfinite(interval.mcnemar_p)


def test_the_resolution_warning_comes_for_a_small_split_and_not_a_large_one():
    # z^2 (1 - B) / B examples at 90 %: 656 for 0.25 point, 163 for 1 point
    assert (examples_needed(0.25), examples_needed(1.0)) == (656, 163)
    small = resolution_warning(270, 0.25, "0.25pt")
    assert "finer than one validation example (0.37pt, 1 of 270)" in small
    assert "needs about 656 validation examples" in small
    assert "1.4 validation examples (0.37pt each)" in resolution_warning(270, 0.5, "0.5pt")
    assert resolution_warning(1000, 0.25, "0.25pt") == ""
    assert resolution_warning(270, 1.0, "1pt") == ""


def test_the_speedup_interval_pairs_the_rounds_of_one_timing():
    from autoquant.measure.uncertainty import speedup_interval

    # a machine whose speed drifts from round to round by up to 2x: hits both models alike
    rng = np.random.default_rng(0)
    drift = rng.uniform(1.0, 2.0, size=30)
    baseline = list(10.0 * drift * rng.uniform(0.98, 1.02, size=30))
    candidate = list(4.0 * drift * rng.uniform(0.98, 1.02, size=30))
    low, high = speedup_interval(baseline, candidate)
    assert low <= 2.5 <= high
    assert speedup_interval(baseline[:2], candidate[:2]) is None


def test_measured_metrics_carry_their_speedup_interval(mlp_task):
    from autoquant import QuantConfig
    from autoquant.measure import FloatReference, get_scenario, measure

    reference = FloatReference.of(mlp_task, get_scenario("bs1-t1"))
    metrics = measure(mlp_task.build(QuantConfig(method="dynamic_int8")), reference)
    assert metrics.speedup_ci_low <= metrics.speedup <= metrics.speedup_ci_high
    assert metrics.drop_ci_low <= metrics.drop_points <= metrics.drop_ci_high
    examples = sum(len(targets) for _, targets in mlp_task.validation_data)
    assert metrics.drop_interval_text() == (
        f"95 % CI {metrics.drop_ci_low:.2f} to {metrics.drop_ci_high:.2f} pt on {examples} examples"
    )
