"""The built-in data: scikit-learn's handwritten digits (1,797 8x8 images, shipped offline)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0
#: Shares of the data per split; stratified by class, fixed by SPLIT_SEED.
SPLIT_SHARES = {"train": 0.6, "calibration": 0.1, "validation": 0.15, "test": 0.15}


@dataclasses.dataclass(frozen=True)
class Split:
    inputs: torch.Tensor  # (N, 1, 8, 8) float32, scaled to [0, 1]
    targets: torch.Tensor  # (N,) int64

    def batches(self, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            (self.inputs[i : i + batch_size], self.targets[i : i + batch_size])
            for i in range(0, len(self.targets), batch_size)
        ]


@functools.cache
def digits_splits() -> dict[str, Split]:
    """The fixed stratified train / calibration / validation / test split of the digits."""
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    indices = np.arange(len(y))
    rest, test = train_test_split(
        indices, test_size=SPLIT_SHARES["test"], stratify=y, random_state=SPLIT_SEED
    )
    remaining = 1 - SPLIT_SHARES["test"]
    rest, val = train_test_split(
        rest,
        test_size=SPLIT_SHARES["validation"] / remaining,
        stratify=y[rest],
        random_state=SPLIT_SEED,
    )
    remaining -= SPLIT_SHARES["validation"]
    train, calib = train_test_split(
        rest,
        test_size=SPLIT_SHARES["calibration"] / remaining,
        stratify=y[rest],
        random_state=SPLIT_SEED,
    )
    return {
        name: Split(torch.from_numpy(x[idx]), torch.from_numpy(y[idx]))
        for name, idx in [
            ("train", train),
            ("calibration", calib),
            ("validation", val),
            ("test", test),
        ]
    }
