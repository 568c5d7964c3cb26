"""Parameter checks whose errors name the parameter, what it must be and what it got."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from autoquant.errors import ConfigError


def _fail(owner: str, name: str, must: str, got: Any) -> ConfigError:
    return ConfigError(f"The {name!r} parameter of {owner} must be {must}. Got {got!r} instead.")


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = list(choices)
    if value not in choices:
        raise _fail(owner, name, f"one of {choices}", value)
    return value


def check_int(owner: str, name: str, value: Any, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(owner, name, "an int" + (f" >= {low}" if low is not None else ""), value)
    if low is not None and value < low:
        raise _fail(owner, name, f"an int >= {low}", value)
    return value


def check_float(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    bounds = f" in {'(' if low_open else '['}{low}, {high}]" if low is not None else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise _fail(owner, name, "a float" + bounds, value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        raise _fail(owner, name, "a float" + bounds, value)
    return float(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(owner, name, "a bool (true or false)", value)
    return value
