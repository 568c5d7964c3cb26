"""Task: a trained model, its data and its metric; the unit every search works on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import torch
from torch import nn

from autoquant.data import check_reiterable
from autoquant.errors import ConfigError


def top1_accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of examples whose highest-scoring class is the target (a score in [0, 1])."""
    return (outputs.argmax(dim=-1) == targets).float().mean().item()


@dataclasses.dataclass
class Task:
    """A model and the data to quantize, score and (for QAT) fine-tune it.

    Batches are ``(inputs, targets)`` pairs in a list or a torch DataLoader.

    Attributes:
        name: A label for reports and MLflow.
        model: The trained float model (never modified by autoquant).
        calibration_data: Batches fed through observers by static methods.
        validation_data: Batches the search scores every trial on.
        test_data: Held-out batches the recommendation is checked on; optional.
        train_data: Batches for quantization-aware training; optional.
        metric: ``metric(outputs, targets) -> float`` in [0, 1], higher is better, over the
            concatenated outputs of a data set. Top-1 accuracy by default.
        loss_fn: Training loss for quantization-aware training (cross-entropy by default).
        model_name: The model's name in reports (a zoo name or the user's).
    """

    name: str
    model: nn.Module
    calibration_data: Iterable
    validation_data: Iterable
    test_data: Iterable | None = None
    train_data: Iterable | None = None
    metric: Callable[[torch.Tensor, torch.Tensor], float] = top1_accuracy
    loss_fn: Callable | None = None
    model_name: str = "model"

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ConfigError(
                f"The 'model' parameter of Task must be a torch.nn.Module. "
                f"Got {type(self.model).__name__} instead."
            )
        check_reiterable(self.calibration_data, "calibration_data")
        check_reiterable(self.validation_data, "validation_data")
        for name in ("test_data", "train_data"):
            if getattr(self, name) is not None:
                check_reiterable(getattr(self, name), name)
        if not callable(self.metric):
            raise ConfigError(
                f"The 'metric' parameter of Task must be a callable (outputs, targets) -> float. "
                f"Got {type(self.metric).__name__} instead."
            )
