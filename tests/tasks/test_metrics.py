"""Every built-in metric on known outputs, the one drop formula, and metrics by name."""

import pytest
import torch

from autoquant import ConfigError
from autoquant.tasks.metrics import METRICS, Metric, get_metric

SCORES = torch.tensor(
    [[0.1, 0.7, 0.2, 0.0, 0.0, 0.0], [0.6, 0.3, 0.1, 0.0, 0.0, 0.0], [0.2, 0.1, 0.3, 0.4, 0.0, 0.0]]
)
TARGETS = torch.tensor([1, 1, 5])  # right, second choice, not in the top 5


def test_labelled_metrics():
    assert METRICS["top1"].fn(SCORES, TARGETS) == pytest.approx(1 / 3)
    assert METRICS["top5"].fn(SCORES, TARGETS) == pytest.approx(2 / 3)
    # class 1: tp 1, fn 1 -> 2/3; class 0 (answered, never true): 0; class 3: 0; class 5: 0
    assert METRICS["f1_macro"].fn(SCORES, TARGETS) == pytest.approx((2 / 3) / 4)


def test_label_free_metrics_compare_with_float():
    float_out = SCORES
    moved = SCORES.clone()
    moved[0] = torch.tensor([0.9, 0.1, 0.0, 0.0, 0.0, 0.0])  # one answer changes
    assert METRICS["agreement"].fn(moved, float_out) == pytest.approx(2 / 3)
    assert METRICS["agreement"].fn(float_out, float_out) == 1.0
    assert METRICS["cosine"].fn(float_out, float_out) == pytest.approx(1.0)
    assert METRICS["cosine"].fn(-float_out, float_out) == 0.0  # opposite: clamped to 0
    assert METRICS["mse"].fn(float_out + 0.1, float_out) == pytest.approx(0.01)
    assert all(METRICS[n].label_free for n in ("agreement", "cosine", "mse"))
    assert not any(METRICS[n].label_free for n in ("top1", "top5", "f1_macro"))


def test_the_drop_is_on_the_metrics_scale_and_positive_when_worse():
    assert METRICS["top1"].drop(0.97, 0.96) == pytest.approx(1.0)  # points
    assert METRICS["top1"].drop(0.97, 0.98) == pytest.approx(-1.0)
    assert METRICS["mse"].drop(0.0, 0.05) == pytest.approx(0.05)  # own units, lower is better
    assert METRICS["mse"].relative_drop(0.0, 0.05) == 0.0
    assert METRICS["top1"].relative_drop(0.5, 0.4) == pytest.approx(0.2)
    loss = Metric("loss", lambda o, t: 1.0, higher_is_better=False, bounded=False)
    assert loss.drop(2.0, 2.5) == pytest.approx(0.5) and loss.unit == ""


def test_metrics_by_name_object_or_callable():
    assert get_metric("cosine") is METRICS["cosine"]
    custom = Metric("error", lambda o, t: 0.1, higher_is_better=False)
    assert get_metric(custom) is custom

    def recall(outputs, targets):
        return 1.0

    assert get_metric(recall).name == "recall" and get_metric(recall).higher_is_better
    with pytest.raises(ConfigError, match="'metric' parameter must be one of .*Got 'acc'"):
        get_metric("acc")
    with pytest.raises(ConfigError, match="'reference' parameter of Metric must be one of"):
        Metric("x", reference="labels")
