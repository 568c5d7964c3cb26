"""Small models with known quantization behaviour, built from the trained zoo MLP."""

import dataclasses
import os
import signal
import time

import torch
from torch import nn

from autoquant.tasks.zoo import load_zoo_model


class OutlierMLP(nn.Module):
    """The zoo MLP with one extra hidden unit that is always 1e5 and read by nothing.

    Float outputs are exactly the MLP's, but any int8 scheme with one range per activation
    tensor rounds the real hidden activations to zero: every int8 configuration collapses.
    """

    def __init__(self) -> None:
        super().__init__()
        mlp = load_zoo_model("mlp", log=lambda _: None)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64, 257)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(257, 128)
        self.relu2 = nn.ReLU()
        self.fc3 = mlp.fc3
        with torch.no_grad():
            self.fc1.weight.zero_()
            self.fc1.weight[:256] = mlp.fc1.weight
            self.fc1.bias[:256] = mlp.fc1.bias
            self.fc1.bias[256] = 1e5
            self.fc2.weight.zero_()
            self.fc2.weight[:, :256] = mlp.fc2.weight
            self.fc2.bias.copy_(mlp.fc2.bias)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(self.flatten(x))))))


class SlowCNN(nn.Module):
    """The zoo CNN, 30 ms slower per call: trials last long enough to be killed mid-way."""

    def __init__(self) -> None:
        super().__init__()
        self.net = load_zoo_model("cnn", log=lambda _: None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.03)
        return self.net(x)


class CrashingCNN(nn.Module):
    """The zoo CNN that kills its own process (SIGSEGV) when run on the fbgemm engine while
    $AUTOQUANT_TEST_CRASH is set: a stand-in for a segfault in a quantized kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.net = load_zoo_model("cnn", log=lambda _: None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if os.environ.get("AUTOQUANT_TEST_CRASH") and torch.backends.quantized.engine == "fbgemm":
            os.kill(os.getpid(), signal.SIGSEGV)
        return self.net(x)


class ManyOpsMLP(nn.Module):
    """The zoo MLP behind 300 tiny elementwise ops that cancel out: eager pays one kernel call
    each, torch.compile fuses them into one, so compiled float is far faster than eager."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = load_zoo_model("mlp", log=lambda _: None)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(150):
            x = x * 1.001
            x = x / 1.001
        return self.mlp(x)


class ResidualCNN(nn.Module):
    """A residual block as torchvision's ResNet writes it: one ReLU module called twice, after
    the first convolution and after the sum. Untrained: for graph structure, not accuracy."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8 * 8 * 8, 10)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.relu(self.conv1(x))
        out = self.relu(self.conv2(identity))
        out = self.relu(self.conv3(out) + identity)
        return self.fc(self.flatten(out))


@dataclasses.dataclass
class ClassifierOutput:
    """A ModelOutput-like dataclass, as Hugging Face models return."""

    logits: torch.Tensor
    hidden: torch.Tensor | None = None


class KeywordMLP(nn.Module):
    """The zoo MLP called with keyword arguments (a dict batch, as a tokenizer gives) and
    returning a ModelOutput-like dataclass: ``model(pixels=..., scale=...)``."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = load_zoo_model("mlp", log=lambda _: None)

    def forward(self, pixels: torch.Tensor, scale: torch.Tensor) -> ClassifierOutput:
        return ClassifierOutput(logits=self.mlp(pixels * scale[:, None, None, None]))


class TwoInputMLP(nn.Module):
    """The zoo MLP taking the top and bottom halves of each digit as two positional inputs
    and returning a tuple ``(logits, features)``."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = load_zoo_model("mlp", log=lambda _: None)

    def forward(self, top: torch.Tensor, bottom: torch.Tensor) -> tuple:
        logits = self.mlp(torch.cat([top, bottom], dim=2))
        return logits, top.flatten(1)


class DictOutputMLP(nn.Module):
    """The zoo MLP returning a dict, its class scores under ``logits``."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = load_zoo_model("mlp", log=lambda _: None)

    def forward(self, x: torch.Tensor) -> dict:
        return {"loss": None, "logits": self.mlp(x)}


class UnusedPoolerMLP(nn.Module):
    """The zoo MLP with a pooler whose output nothing reads, as a BERT encoder's pooler is when
    only its hidden states are used: a Linear and a Tanh left in the exported graph."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = load_zoo_model("mlp", log=lambda _: None)
        self.pooler = nn.Linear(10, 10)
        self.act = nn.Tanh()
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.mlp(x)
        self.act(self.pooler(logits))  # computed, never read
        return logits


class BranchingMLP(nn.Module):
    """The zoo MLP behind a branch on the data's values: torch.fx cannot trace it and
    torch.export cannot capture it (the branch depends on the input), eager runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = load_zoo_model("mlp", log=lambda _: None)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.max() > 100:  # never true of real digits
            x = x / 16
        return self.mlp(x)
