"""The model zoo: small models of common shapes, trained on the digits and cached on disk.

Every model takes the digits as ``(N, 1, 8, 8)`` float tensors and returns 10 class scores.
Training is seeded; the weights are cached under ``$AUTOQUANT_CACHE`` (default
``~/.cache/autoquant``) and loaded back with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

from autoquant.errors import ConfigError
from autoquant.tasks.digits import digits_splits

#: Bumped when an architecture or its training changes, so stale caches are not reused.
ZOO_VERSION = 1
TRAIN_SEED = 0


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(64, 256)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(256, 128)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(self.flatten(x))))))


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block1 = _conv_block(1, 32)
        self.block2 = _conv_block(32, 64)
        self.pool = nn.MaxPool2d(2)
        self.block3 = _conv_block(64, 64)
        self.head_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.block2(self.block1(x)))
        return self.fc(self.flatten(self.head_pool(self.block3(x))))


class Upsampled(nn.Module):
    """An ImageNet-style network on the 8x8 digits, upsampled to 32x32 inside the model."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.upsample = nn.Upsample(size=(32, 32), mode="bilinear", align_corners=False)
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.upsample(x))


def resnet18() -> nn.Module:
    net = torchvision.models.resnet18(num_classes=10)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
    return Upsampled(net)


def mobilenet_v2() -> nn.Module:
    net = torchvision.models.mobilenet_v2(num_classes=10)
    net.features[0][0] = nn.Conv2d(1, 32, kernel_size=3, stride=1, padding=1, bias=False)
    return Upsampled(net)


class LSTMClassifier(nn.Module):
    """Reads the image row by row: 8 time steps of 8 pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 64, batch_first=True)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.reshape(x.size(0), 8, 8))
        return self.fc(out[:, -1])


class EncoderLayer(nn.Module):
    """A post-norm transformer encoder layer with every projection an explicit nn.Linear.

    Written out (rather than nn.TransformerEncoderLayer) the way most deployed transformers
    are, so each projection is a layer quantization can select.
    """

    def __init__(self, d_model: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d_model // heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, hidden)
        self.act = nn.GELU()
        self.ff2 = nn.Linear(hidden, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.size(0), -1, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        attention = torch.softmax(q @ k.transpose(-2, -1) / self.head_dim**0.5, dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(x.size(0), -1, self.heads * self.head_dim)
        x = self.norm1(x + self.dropout(self.out(mixed)))
        return self.norm2(x + self.dropout(self.ff2(self.act(self.ff1(x)))))


class TransformerClassifier(nn.Module):
    """A small encoder over the 8 rows of the image as tokens."""

    def __init__(self, d_model: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d_model)
        self.position = nn.Parameter(torch.zeros(1, 8, d_model))
        self.encoder = nn.Sequential(
            *[
                EncoderLayer(d_model, heads=4, hidden=2 * d_model, dropout=0.1)
                for _ in range(layers)
            ]
        )
        self.fc = nn.Linear(d_model, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.reshape(x.size(0), 8, 8)) + self.position
        return self.fc(self.encoder(tokens).mean(dim=1))


@torch.no_grad()
def with_outlier_channels(
    model: CNN, scale: float = 128.0, channels: tuple[int, ...] = (0, 1, 2, 3)
) -> CNN:
    """``model`` (the trained zoo CNN) with activation outliers and the same float outputs.

    Block 3's batch norm scales ``channels`` up by ``scale`` and the Linear head reads them
    scaled down by as much (ReLU and average pooling commute with a positive scale), the way a
    few hidden channels of a transformer carry values far beyond the rest. One int8 range per
    activation tensor then leaves the other channels only a few levels: every int8
    configuration breaks a 1-point budget, and keeping block 3 and the head in float recovers.
    """
    norm, head = model.block3[1], model.fc
    index = list(channels)
    norm.weight[index] *= scale
    norm.bias[index] *= scale
    head.weight[:, index] /= scale
    return model


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    build: Callable[[], nn.Module]
    epochs: int
    lr: float
    summary: str
    #: A zoo model this one is made from by ``derive`` (no training of its own).
    derived_from: str | None = None
    derive: Callable[[nn.Module], nn.Module] | None = None


ZOO: dict[str, ZooEntry] = {
    "mlp": ZooEntry(MLP, 100, 5e-3, "3-layer perceptron, Linear only"),
    "cnn": ZooEntry(CNN, 15, 2e-3, "3 conv blocks (conv, batch norm, ReLU) and a Linear head"),
    "resnet18": ZooEntry(resnet18, 6, 1e-3, "torchvision ResNet-18 on 32x32 upsampled digits"),
    "mobilenet_v2": ZooEntry(
        mobilenet_v2, 15, 2e-3, "torchvision MobileNetV2 (depthwise convs) on 32x32 digits"
    ),
    "lstm": ZooEntry(LSTMClassifier, 100, 5e-3, "one LSTM layer over the 8 rows, Linear head"),
    "transformer": ZooEntry(
        TransformerClassifier, 60, 2e-3, "2-layer transformer encoder over the 8 rows"
    ),
    "cnn_outliers": ZooEntry(
        CNN,
        0,
        0.0,
        "the cnn with activation outliers (4 channels 128x the rest), same float outputs",
        derived_from="cnn",
        derive=with_outlier_channels,
    ),
}


def zoo_models() -> list[str]:
    return list(ZOO)


def cache_dir() -> Path:
    """Where trained zoo weights live: ``$AUTOQUANT_CACHE`` or ``~/.cache/autoquant``."""
    return Path(os.environ.get("AUTOQUANT_CACHE") or Path.home() / ".cache" / "autoquant")


def build_zoo_model(name: str) -> nn.Module:
    """The untrained architecture of zoo model ``name``."""
    if name not in ZOO:
        raise ConfigError(
            f"The 'model' parameter must be one of {list(ZOO)}. Got {name!r} instead."
        )
    torch.manual_seed(TRAIN_SEED)
    return ZOO[name].build()


def _train(name: str, model: nn.Module, log: Callable[[str], None]) -> dict:
    entry = ZOO[name]
    splits = digits_splits()
    torch.manual_seed(TRAIN_SEED)
    generator = torch.Generator().manual_seed(TRAIN_SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=entry.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=entry.lr, total_steps=entry.epochs * len(splits["train"].batches(32))
    )
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(entry.epochs):
        model.train()
        order = torch.randperm(len(splits["train"].targets), generator=generator)
        x, y = splits["train"].inputs[order], splits["train"].targets[order]
        for i in range(0, len(y), 32):
            optimizer.zero_grad()
            loss_fn(model(x[i : i + 32]), y[i : i + 32]).backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        scores = {
            split: (model(splits[split].inputs).argmax(1) == splits[split].targets)
            .float()
            .mean()
            .item()
            for split in ("validation", "test")
        }
    seconds = time.perf_counter() - start
    log(
        f"trained zoo model {name!r} in {seconds:.0f} s: validation accuracy "
        f"{scores['validation']:.2%}, test accuracy {scores['test']:.2%}"
    )
    return {"seconds": seconds, **{f"{k}_accuracy": v for k, v in scores.items()}}


def load_zoo_model(
    name: str, *, retrain: bool = False, log: Callable[[str], None] = print
) -> nn.Module:
    """Zoo model ``name`` with trained weights, trained and cached on first use (eval mode)."""
    model = build_zoo_model(name)
    entry = ZOO[name]
    if entry.derived_from:
        return entry.derive(load_zoo_model(entry.derived_from, retrain=retrain, log=log)).eval()
    path = cache_dir() / "zoo" / f"{name}-v{ZOO_VERSION}.pt"
    if path.exists() and not retrain:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    log(f"training zoo model {name!r} on the digits (first use; cached in {path.parent})")
    info = _train(name, model, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)  # atomic: a worker never reads a half-written file
    path.with_suffix(".json").write_text(json.dumps(info, indent=2))
    return model.eval()
