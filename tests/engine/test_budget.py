import dataclasses

import pytest

from autoquant import ConfigError
from autoquant.engine.budget import Budget


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1pt", Budget(1.0)),
        ("0.25pt", Budget(0.25)),
        ("1%", Budget(1.0, relative=True)),
        ("2", Budget(2.0)),
        (0.5, Budget(0.5)),
    ],
)
def test_parse(text, expected):
    assert Budget.parse(text) == expected


@pytest.mark.parametrize("text", ["one point", "-1pt", "1 ms", ""])
def test_parse_refuses_garbage(text):
    with pytest.raises(ConfigError, match="'budget' parameter must be a drop like '1pt'"):
        Budget.parse(text)


def test_out_of_range():
    with pytest.raises(
        ConfigError,
        match="'max_drop' parameter of Budget must be a float in \\[0.0, 100.0\\]. Got 150",
    ):
        Budget(150)


def test_violation_in_points_and_percent():
    class M:
        drop_points = 1.5
        drop_relative = 0.02

    assert Budget(1.0).violation(M) == pytest.approx(0.5)
    assert Budget(3.0, relative=True).violation(M) == pytest.approx(-1.0)
    assert str(Budget(1.0)) == "1pt" and str(Budget(1.0, relative=True)) == "1%"


def test_confidence_mode_judges_the_upper_bound_in_the_budget_unit():
    from autoquant.measure import Metrics

    metrics = Metrics(
        accuracy=0.795, float_accuracy=0.8, drop_points=0.5, drop_relative=0.00625,
        latency_ms=1, latency_spread_ms=0, float_latency_ms=1, speedup=1, size_bytes=1,
        float_size_bytes=1, size_ratio=1, scenario="bs1-t1", drop_upper=1.2,
    )  # fmt: skip
    assert Budget(1.0).violation(metrics) == pytest.approx(0.2)  # the bound, 1.2, is over
    plain = dataclasses.replace(metrics, drop_upper=None)
    assert Budget(1.0).violation(plain) == pytest.approx(-0.5)  # the drop, 0.5, is within
    # relative: 1.2 points of a score of 0.8 is 1.5 % of it
    assert Budget(1.0, relative=True).upper_drop(metrics) == pytest.approx(1.5)
