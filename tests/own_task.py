"""A user's own tasks and models, as a user's module would hold them, named by the tests as
``tests.own_task:attr``: the digits data behind other signatures and batch structures."""

import torch
from torch import nn

from autoquant import Task
from autoquant.tasks.digits import digits_splits
from autoquant.tasks.zoo import load_zoo_model
from tests.models import KeywordMLP


def digits_batches(split: str, size: int, structure: str) -> list:
    """The digits split as batches of ``structure``."""
    batches = []
    for x, y in digits_splits()[split].batches(size):
        if structure == "dict":  # keyword inputs, the targets under "labels"
            batches.append({"pixels": x, "scale": torch.ones(len(x)), "labels": y})
        elif structure == "tuple":  # two positional inputs, in an (inputs, targets) pair
            batches.append(((x[:, :, :4], x[:, :, 4:]), y))
        elif structure == "tensor":  # inputs alone: no targets
            batches.append(x)
        else:
            batches.append((x, y))
    return batches


def keyword_task() -> Task:
    """Dict batches (keyword inputs and ``labels``), a model returning a dataclass."""
    return Task(
        name="digits-dict",
        model=KeywordMLP(),
        calibration_data=digits_batches("calibration", 16, "dict"),
        validation_data=digits_batches("validation", 64, "dict"),
        test_data=digits_batches("test", 64, "dict"),
    )


def mlp() -> nn.Module:
    """The trained digits MLP: a model factory for the file-based tasks."""
    return load_zoo_model("mlp", log=lambda _: None)


class RGBDigits(nn.Module):
    """The trained digits MLP behind a photo-like input: (N, 3, H, W) images, grey digits."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(8)
        self.mlp = mlp()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pool(images.mean(dim=1, keepdim=True)))


def not_a_task() -> int:
    return 5


def nan_metric(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float("nan")


def text_metric(outputs: torch.Tensor, targets: torch.Tensor) -> str:
    return "high"
