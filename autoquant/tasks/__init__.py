"""Built-in tasks (scikit-learn's digits with the model zoo) and the Task a user's own model
and data plug into."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from autoquant.errors import ConfigError
from autoquant.tasks.base import Task, top1_accuracy
from autoquant.tasks.digits import digits_splits
from autoquant.tasks.zoo import ZOO, load_zoo_model, zoo_models

#: Examples per batch of each split; calibration batches are small so a few cover many images.
BATCH_SIZES = {"train": 32, "calibration": 16, "validation": 64, "test": 64}


def digits_task(
    model: str | nn.Module = "cnn",
    *,
    model_name: str | None = None,
    log: Callable[[str], None] = print,
) -> Task:
    """The digits task with zoo model ``model`` (trained and cached on first use), or with
    your own module taking ``(N, 1, 8, 8)`` images and returning 10 class scores."""
    splits = digits_splits()
    return Task(
        name="digits",
        model=load_zoo_model(model, log=log) if isinstance(model, str) else model,
        calibration_data=splits["calibration"].batches(BATCH_SIZES["calibration"]),
        validation_data=splits["validation"].batches(BATCH_SIZES["validation"]),
        test_data=splits["test"].batches(BATCH_SIZES["test"]),
        train_data=splits["train"].batches(BATCH_SIZES["train"]),
        metric=top1_accuracy,
        model_name=model_name or (model if isinstance(model, str) else type(model).__name__),
    )


#: Built-in task name -> factory taking a zoo model name or a module.
TASKS: dict[str, Callable[..., Task]] = {"digits": digits_task}


def get_task(
    name: str,
    model: str | nn.Module,
    *,
    model_name: str | None = None,
    log: Callable[[str], None] = print,
) -> Task:
    """Built-in task ``name`` with a zoo model name or a module of the user's."""
    if name not in TASKS:
        raise ConfigError(
            f"The 'task' parameter must be one of {[*TASKS, 'imagefolder', 'tensors']} or "
            f"'module:attr' naming your own Task. Got {name!r} instead."
        )
    return TASKS[name](model, model_name=model_name, log=log)


__all__ = ["TASKS", "ZOO", "Task", "digits_task", "get_task", "top1_accuracy", "zoo_models"]
