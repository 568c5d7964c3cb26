"""Built-in tasks over the user's own files: an ImageFolder tree of images, or saved tensors.

Both take the user's model (``module:factory`` on the command line) and split the data once,
by a fixed seed, into calibration / validation / test, unless the files are split already.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoquant.engine.data import load_weights_only
from autoquant.errors import ConfigError, DataError
from autoquant.tasks.base import Task

#: Shares of an unsplit data set: calibration, validation, test (fixed seed 0).
SHARES = {"calibration": 0.2, "validation": 0.4, "test": 0.4}
#: Examples per batch of each split.
BATCH_SIZES = {"calibration": 16, "validation": 32, "test": 32}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _split_indices(count: int) -> dict[str, list[int]]:
    order = torch.randperm(count, generator=torch.Generator().manual_seed(0)).tolist()
    calibration = max(1, round(SHARES["calibration"] * count))
    validation = max(1, round(SHARES["validation"] * count))
    return {
        "calibration": order[:calibration],
        "validation": order[calibration : calibration + validation],
        "test": order[calibration + validation :],
    }


def _batched(pairs: Sequence[tuple[torch.Tensor, Any]], size: int) -> list:
    batches = []
    for start in range(0, len(pairs), size):
        chunk = pairs[start : start + size]
        inputs = torch.stack([x for x, _ in chunk])
        targets = [y for _, y in chunk]
        batches.append(inputs if targets[0] is None else (inputs, torch.as_tensor(targets)))
    return batches


def imagefolder_task(
    model: nn.Module,
    folder: str | Path,
    *,
    resize: int = 256,
    crop: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    metric: Any = None,
    model_name: str = "model",
) -> Task:
    """A task over a torchvision ``ImageFolder`` tree (one subfolder of images per class).

    A folder holding ``calibration/`` and ``validation/`` trees (and optionally ``test/``) is
    used as split; any other is split 20 / 40 / 40 with a fixed seed. Images are resized
    (shorter side ``resize``), center-cropped to ``crop`` and normalized with ``mean`` / ``std``.
    The targets are the class indices in the folder's sorted class order (top-1 by default:
    give ``metric='agreement'`` when the folder's classes are not the model's).
    """
    from torchvision import datasets, transforms

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"The 'data' folder {str(root)!r} does not exist or is not a folder.")
    if len(mean) != len(std):
        raise ConfigError(
            f"The 'mean' and 'std' parameters must have one value per channel each. Got "
            f"{len(mean)} and {len(std)} values."
        )
    transform = transforms.Compose(
        [
            transforms.Resize(resize),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(list(mean), list(std)),
        ]
    )

    def read(path: Path) -> list:
        try:
            images = datasets.ImageFolder(str(path), transform=transform)
        except (FileNotFoundError, RuntimeError) as err:
            raise DataError(f"The image folder {str(path)!r} cannot be read: {err}") from None
        return [images[i] for i in range(len(images))]

    if (root / "calibration").is_dir() and (root / "validation").is_dir():
        splits = {s: read(root / s) for s in SHARES if (root / s).is_dir()}
    else:
        everything = read(root)
        splits = {
            s: [everything[i] for i in idx] for s, idx in _split_indices(len(everything)).items()
        }
    batches = {s: _batched(pairs, BATCH_SIZES[s]) if pairs else None for s, pairs in splits.items()}
    return Task(
        name=f"imagefolder:{root.name}",
        model=model,
        calibration_data=batches["calibration"],
        validation_data=batches["validation"],
        test_data=batches.get("test"),
        metric=metric,
        model_name=model_name,
    )


def tensors_task(
    model: nn.Module, path: str | Path, *, metric: Any = None, model_name: str = "model"
) -> Task:
    """A task over saved tensors, read with ``torch.load(weights_only=True)``.

    The file holds, as ``torch.save`` wrote it, either ``{"inputs": tensor, "targets": tensor}``
    (targets optional: without them the search is label-free), or a tensor of inputs alone,
    split 20 / 40 / 40 with a fixed seed; or ``{"calibration": ..., "validation": ...,
    "test": ...}``, each a list of batches of any structure autoquant reads (a tensor, a tuple,
    a dict of tensors, or an ``(inputs, targets)`` pair).
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"The 'data' file {str(file)!r} does not exist.")
    content = load_weights_only(
        file,
        "tensors file",
        "autoquant loads it with weights_only=True, so it runs no code from the file. Save "
        "plain tensors, lists and dicts with torch.save.",
    )
    if isinstance(content, dict) and "validation" in content and "calibration" in content:
        splits = {s: content.get(s) for s in SHARES}
        for name, batches in splits.items():
            if batches is not None and not isinstance(batches, list):
                raise ConfigError(
                    f"{file}: the {name!r} entry must be a list of batches. Got "
                    f"{type(batches).__name__}."
                )
    else:
        if isinstance(content, torch.Tensor):
            content = {"inputs": content}
        if not isinstance(content, dict) or not isinstance(content.get("inputs"), torch.Tensor):
            raise ConfigError(
                f"{file}: the file must hold a tensor of inputs, a dict with 'inputs' (and "
                f"optionally 'targets') tensors, or a dict of 'calibration', 'validation' and "
                f"'test' lists of batches. Got {type(content).__name__}."
            )
        inputs, targets = content["inputs"], content.get("targets")
        if targets is not None and len(targets) != len(inputs):
            raise DataError(
                f"{file}: 'inputs' holds {len(inputs)} examples and 'targets' {len(targets)}; "
                f"they must match."
            )
        if len(inputs) < 3:
            raise DataError(
                f"{file}: {len(inputs)} example(s) cannot be split into calibration, validation "
                f"and test data; give at least 3 (dozens to score reliably)."
            )
        pairs = [(inputs[i], None if targets is None else targets[i]) for i in range(len(inputs))]
        splits = {
            s: _batched([pairs[i] for i in idx], BATCH_SIZES[s])
            for s, idx in _split_indices(len(pairs)).items()
        }
    return Task(
        name=f"tensors:{file.stem}",
        model=model,
        calibration_data=splits["calibration"],
        validation_data=splits["validation"],
        test_data=splits.get("test") or None,
        metric=metric,
        model_name=model_name,
    )
