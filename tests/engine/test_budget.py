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
