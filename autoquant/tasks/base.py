"""Task: a trained model, its data and its metric; the unit every search works on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from autoquant._warnings import quietly
from autoquant.engine.data import Adapter, call, check_reiterable, describe
from autoquant.errors import ConfigError, DataError, ModelError
from autoquant.tasks.metrics import Metric, get_metric, top1

if TYPE_CHECKING:
    from autoquant.engine.config import QuantConfig
    from autoquant.engine.quantized import QuantizedModel

#: Kept for code written against earlier versions: the ``top1`` metric's function.
top1_accuracy = top1


@dataclasses.dataclass
class Task:
    """A model and the data to quantize, score and (for QAT) fine-tune it.

    Batches may be of any structure (``autoquant.engine.data.Adapter``): a tensor, a tuple or
    list of positional inputs, a dict of keyword inputs (its ``labels`` entry the targets), or an
    ``(inputs, targets)`` pair of any of these, in a list or a torch DataLoader.

    Attributes:
        name: A label for reports and MLflow.
        model: The trained float model (never modified by autoquant).
        calibration_data: Batches fed through observers by static methods.
        validation_data: Batches the search scores every trial on (and times it on).
        test_data: Held-out batches the recommendation is checked on; optional.
        train_data: Batches for quantization-aware training; optional.
        metric: A built-in name (``top1``, ``top5``, ``f1_macro``; label-free ``agreement``,
            ``cosine``, ``mse``), a ``Metric``, or a callable ``(outputs, targets) -> float``
            in [0, 1], higher is better. Default: ``top1`` when the batches carry targets,
            else ``cosine`` against the float model's outputs (label-free).
        loss_fn: Training loss for quantization-aware training (cross-entropy by default).
        model_name: The model's name in reports (a zoo name or the user's).
        transform_fn: ``transform_fn(batch) -> model inputs`` (a tensor, a tuple of positional
            arguments or a dict of keyword arguments) when batches need reshaping.
        target_fn: ``target_fn(batch) -> targets`` when the targets are not where autoquant
            looks (the second item of a pair, a dict's ``labels``).
        output_fn: ``output_fn(model outputs) -> tensor`` to score (say, a pooled embedding);
            by default a dict or ModelOutput gives its ``logits`` (or embeddings), else its first
            tensor (an encoder's ``last_hidden_state``), and a tuple its first item.
        eval_fn: ``eval_fn(model) -> float``: your own evaluation of a candidate, used instead
            of the metric on the validation and test data. Pass a ``Metric(name, None, ...)``
            as ``metric`` to name it and give its direction and scale (default: a score in
            [0, 1], higher is better).
    """

    name: str
    model: nn.Module
    calibration_data: Iterable
    validation_data: Iterable
    test_data: Iterable | None = None
    train_data: Iterable | None = None
    metric: str | Metric | Callable[[torch.Tensor, torch.Tensor], float] | None = None
    loss_fn: Callable | None = None
    model_name: str = "model"
    transform_fn: Callable[[Any], Any] | None = None
    target_fn: Callable[[Any], Any] | None = None
    output_fn: Callable[[Any], torch.Tensor] | None = None
    eval_fn: Callable[[nn.Module], float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise ConfigError(
                f"The 'model' parameter of Task must be a torch.nn.Module. "
                f"Got {type(self.model).__name__} instead."
            )
        for hook in ("transform_fn", "target_fn", "output_fn", "eval_fn", "loss_fn"):
            value = getattr(self, hook)
            if value is not None and not callable(value):
                raise ConfigError(
                    f"The {hook!r} parameter of Task must be a callable or None. "
                    f"Got {type(value).__name__} instead."
                )
        for name in ("calibration_data", "validation_data", "test_data", "train_data"):
            data = getattr(self, name)
            if data is None and name in ("test_data", "train_data"):
                continue
            check_reiterable(data, name)
            if next(iter(data), None) is None:
                raise DataError(f"The {name!r} data is empty: give at least one batch.")
        self.adapter = Adapter(self.transform_fn, self.target_fn, self.output_fn)
        if self.metric is None:
            if self.eval_fn is not None:
                self.metric = Metric("eval_fn")
            else:
                self.metric = "top1" if self._has_targets() else "cosine"
        self.metric = get_metric(self.metric)
        if self.eval_fn is None and self.metric.fn is None:
            raise ConfigError(
                f"The metric {self.metric.name!r} has no function (fn=None): give the Task an "
                f"eval_fn, or a metric that scores outputs."
            )
        self._references: dict[int, tuple[Iterable, torch.Tensor]] = {}

    def _has_targets(self) -> bool:
        return self.adapter.targets(next(iter(self.validation_data))) is not None

    @property
    def label_free(self) -> bool:
        """Whether the drop is measured against the float model's outputs, not targets."""
        return self.metric.label_free

    def reference_outputs(self, data: Iterable, outputs_of: Callable) -> torch.Tensor:
        """The float model's outputs on ``data`` (what a label-free metric compares with),
        computed once per data set by ``outputs_of(model, data)``."""
        key = id(data)
        if key not in self._references or self._references[key][0] is not data:
            self._references[key] = (data, outputs_of(self.model, data))
        return self._references[key][1]

    @torch.no_grad()
    def check(self) -> None:
        """Run the float model on the first batch of the calibration and validation data, so
        a model that cannot take the data is refused before any work, naming the batch."""
        for name in ("calibration_data", "validation_data"):
            batch = next(iter(getattr(self, name)))
            where = f"the first batch of {name!r}"
            try:
                inputs = self.adapter.inputs(batch)
            except Exception as err:  # noqa: BLE001 - the user's transform_fn failed
                raise DataError(
                    f"The transform_fn failed on {where} ({describe(batch)}): "
                    f"{type(err).__name__}: {err}."
                ) from None
            try:
                outputs = call(self.model.eval(), inputs)
            except Exception as err:  # noqa: BLE001 - reported as the model failing, with cause
                raise ModelError(
                    f"The model fails on {where}, given {describe(inputs)}: "
                    f"{type(err).__name__}: {str(err).strip()[:300]}. Check the shape, dtype and "
                    f"device the model expects; if the batches are not its inputs as they are, "
                    f"give the task a transform_fn(batch) that returns them (a tensor, a tuple "
                    f"of positional or a dict of keyword arguments)."
                ) from None
            self.adapter.output(outputs)

    @quietly
    def build(self, config: QuantConfig) -> QuantizedModel:
        """``autoquant.apply`` of ``config`` to this task's model, with its calibration and
        training data, loss and adapter: how every candidate of a search is built."""
        from autoquant.engine.apply import apply

        return apply(
            self.model,
            config,
            self.calibration_data,
            self.train_data,
            loss_fn=self.loss_fn,
            adapter=self.adapter,
        )
