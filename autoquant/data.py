"""Batches as autoquant reads them: ``(inputs, targets)`` pairs, or bare input tensors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from autoquant.errors import DataError


def inputs_of(batch: Any) -> torch.Tensor:
    """The model input of a batch: the batch itself, or the first item of a pair."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def targets_of(batch: Any, parameter: str) -> torch.Tensor:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise DataError(
            f"The batches of {parameter!r} must be (inputs, targets) pairs to be scored. "
            f"Got a {type(batch).__name__} instead."
        )
    return batch[1]


def check_reiterable(data: Any, parameter: str) -> None:
    """Data is read more than once (every trial), so a one-shot iterator would come back empty."""
    if data is None or not isinstance(data, Iterable) or iter(data) is data:
        raise DataError(
            f"The {parameter!r} data must be a re-iterable collection of batches (a list or a "
            f"torch DataLoader). Got {type(data).__name__} instead."
        )


def take_inputs(data: Any, count: int, parameter: str) -> list[torch.Tensor]:
    """The inputs of the first ``count`` batches; fewer batches than asked is an error."""
    check_reiterable(data, parameter)
    inputs = []
    for batch in data:
        if len(inputs) == count:
            break
        x = inputs_of(batch)
        if not isinstance(x, torch.Tensor):
            raise DataError(
                f"The batches of {parameter!r} must hold tensors. Got {type(x).__name__}."
            )
        inputs.append(x)
    if not inputs:
        raise DataError(f"The {parameter!r} data is empty: give at least one batch.")
    if len(inputs) < count:
        raise DataError(
            f"The {parameter!r} data has {len(inputs)} batch(es) but calibration_batches asks "
            f"for {count}. Lower calibration_batches to at most {len(inputs)} or give more data."
        )
    return inputs
