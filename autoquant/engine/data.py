"""Batches of any structure, as autoquant reads them: the one adapter every code path uses.

A batch may be a tensor, a tuple or list (the model's positional arguments), a dict (its
keyword arguments, what a Hugging Face tokenizer returns), or an ``(inputs, targets)`` pair of
any of these. A model's output may be a tensor, a tuple, a dict or a ``ModelOutput``-like
dataclass. ``Adapter`` turns a batch into the model's inputs and its targets, calls the model,
and picks the tensor to score; calibration, QAT, scoring, timing, sensitivity and export all go
through it, so no code path assumes a single tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from autoquant.errors import DataError

#: Keys of a dict batch that hold its targets (Hugging Face's names), taken out of the inputs.
TARGET_KEYS = ("labels", "label")
#: Fields of a dict or ModelOutput output that hold the tensor to score, first found first;
#: without any, its first tensor (a transformer encoder's ``last_hidden_state``).
OUTPUT_KEYS = ("logits", "sentence_embedding", "embeddings")


def call(model: nn.Module, inputs: Any) -> Any:
    """``model`` called on model inputs: a tensor, positional arguments, or keyword arguments."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def as_args(inputs: Any) -> tuple[tuple, dict]:
    """Model inputs as ``(args, kwargs)``, what tracing and export take."""
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    return (inputs,), {}


def tensors_of(inputs: Any) -> list[torch.Tensor]:
    """Every tensor in a (nested) structure, in order."""
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    if isinstance(inputs, Mapping):
        return [t for v in inputs.values() for t in tensors_of(v)]
    if isinstance(inputs, (tuple, list)):
        return [t for v in inputs for t in tensors_of(v)]
    return []


def batch_length(inputs: Any) -> int:
    """Examples in model inputs: the first dimension of their first tensor."""
    tensors = [t for t in tensors_of(inputs) if t.dim() > 0]
    if not tensors:
        raise DataError(
            f"A batch must hold at least one tensor with a batch dimension. Got "
            f"{_describe(inputs)}."
        )
    return len(tensors[0])


def map_tensors(inputs: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``inputs`` with ``fn`` applied to every tensor that has a batch dimension."""
    if isinstance(inputs, torch.Tensor):
        return fn(inputs) if inputs.dim() > 0 else inputs
    if isinstance(inputs, Mapping):
        return type(inputs)({k: map_tensors(v, fn) for k, v in inputs.items()})
    if isinstance(inputs, tuple):
        return tuple(map_tensors(v, fn) for v in inputs)
    if isinstance(inputs, list):
        return [map_tensors(v, fn) for v in inputs]
    return inputs


def concat(pieces: list[Any]) -> Any:
    """Model inputs (or outputs) of several batches joined along the batch dimension."""
    first = pieces[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(pieces) if first.dim() > 0 else first
    if isinstance(first, Mapping):
        return type(first)({k: concat([p[k] for p in pieces]) for k in first})
    if isinstance(first, (tuple, list)):
        joined = [concat([p[i] for p in pieces]) for i in range(len(first))]
        return tuple(joined) if isinstance(first, tuple) else joined
    return first


def shape_signature(inputs: Any) -> tuple:
    """The shapes past the batch dimension: batches with the same signature can be joined."""
    return tuple((tuple(t.shape[1:]), t.dtype) if t.dim() > 0 else () for t in tensors_of(inputs))


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({value.dtype})"
    if isinstance(value, Mapping):
        return "a dict of {" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of [" + ", ".join(_describe(v) for v in value) + "]"
    return f"a {type(value).__name__}"


def describe(value: Any) -> str:
    """A short account of a batch or output's structure, for error messages."""
    text = _describe(value)
    return text if len(text) < 300 else text[:297] + "..."


def pick_output(outputs: Any) -> torch.Tensor:
    """The tensor to score from a model's output: the tensor itself; of a dict or ModelOutput,
    its ``logits`` (or sentence embedding, embeddings), else its first tensor;
    of a tuple or list, its first item; of a dataclass, its first tensor field."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if dataclasses.is_dataclass(outputs) and not isinstance(outputs, Mapping):
        outputs = {f.name: getattr(outputs, f.name) for f in dataclasses.fields(outputs)}
    if isinstance(outputs, Mapping):
        for key in OUTPUT_KEYS:
            if isinstance(outputs.get(key), torch.Tensor):
                return outputs[key]
        values = [v for v in outputs.values() if v is not None]
    elif isinstance(outputs, (tuple, list)):
        values = list(outputs)
    else:
        values = []
    if values:
        return pick_output(values[0])
    raise DataError(
        f"The model's output must be a tensor, or hold one (a tuple, dict or ModelOutput). Got "
        f"{describe(outputs)}; give the task an output_fn that returns the tensor to score."
    )


@dataclasses.dataclass(frozen=True)
class Adapter:
    """How batches become model inputs and targets, and outputs a tensor to score.

    Without hooks, a batch is read by its structure: a dict is keyword arguments (its
    ``labels`` or ``label`` entry, if any, the targets); a 2-item tuple or list is an
    ``(inputs, targets)`` pair; any other tuple or list is positional arguments, and a tensor
    the single input (both without targets). The hooks override each step; a model taking
    two positional inputs and no targets needs ``transform_fn`` and ``target_fn`` (returning
    None), since its 2-item batches read as pairs.

    Attributes:
        transform_fn: ``transform_fn(batch) -> model inputs`` (a tensor, a tuple of positional
            arguments, or a dict of keyword arguments), as NNCF's ``Dataset`` takes it.
        target_fn: ``target_fn(batch) -> targets`` (None for a batch without any).
        output_fn: ``output_fn(model outputs) -> tensor`` scored by the metric (say, a pooled
            embedding from a transformer's hidden states).
    """

    transform_fn: Callable[[Any], Any] | None = None
    target_fn: Callable[[Any], Any] | None = None
    output_fn: Callable[[Any], torch.Tensor] | None = None

    def inputs(self, batch: Any) -> Any:
        """The model inputs of ``batch``."""
        if self.transform_fn is not None:
            return self.transform_fn(batch)
        if isinstance(batch, Mapping):
            return {k: v for k, v in batch.items() if k not in TARGET_KEYS}
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[0]
        return batch

    def targets(self, batch: Any) -> Any:
        """The targets of ``batch``, or None when it carries none."""
        if self.target_fn is not None:
            return self.target_fn(batch)
        if isinstance(batch, Mapping):
            return next((batch[k] for k in TARGET_KEYS if k in batch), None)
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch[1]  # an (inputs, targets) pair, with or without a transform_fn
        return None

    def output(self, outputs: Any) -> torch.Tensor:
        """The tensor to score from the model's raw outputs."""
        if self.output_fn is not None:
            picked = self.output_fn(outputs)
            if not isinstance(picked, torch.Tensor):
                raise DataError(
                    f"The output_fn must return a tensor. Got {describe(picked)} instead."
                )
            return picked
        return pick_output(outputs)

    def forward(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The tensor to score of ``model`` on ``batch``."""
        return self.output(call(model, self.inputs(batch)))


#: How batches are read when the user gives no hooks.
DEFAULT_ADAPTER = Adapter()


def check_reiterable(data: Any, parameter: str) -> None:
    """Data is read more than once (every trial), so a one-shot iterator would come back empty."""
    if data is None or not isinstance(data, Iterable) or iter(data) is data:
        raise DataError(
            f"The {parameter!r} data must be a re-iterable collection of batches (a list or a "
            f"torch DataLoader). Got {type(data).__name__} instead."
        )


def take_inputs(
    data: Any, count: int, parameter: str, adapter: Adapter = DEFAULT_ADAPTER
) -> list[Any]:
    """The model inputs of the first ``count`` batches (all of them when there are fewer:
    ``calibration_note`` says how many the observers saw)."""
    check_reiterable(data, parameter)
    inputs = []
    for batch in data:
        if len(inputs) == count:
            break
        x = adapter.inputs(batch)
        if not tensors_of(x):
            raise DataError(
                f"The batches of {parameter!r} must hold tensors. Got {describe(x)}; give the "
                f"task a transform_fn that returns the model's inputs."
            )
        inputs.append(x)
    if not inputs:
        raise DataError(f"The {parameter!r} data is empty: give at least one batch.")
    return inputs


#: Fewer calibration examples than this is warned about: observers may see too little.
FEW_CALIBRATION_EXAMPLES = 32


def calibration_note(data: Any, asked: int, adapter: Adapter = DEFAULT_ADAPTER) -> str | None:
    """A warning when the calibration data is shorter than ``asked`` batches, or holds so few
    examples that the observers' ranges are a guess; None when it is ample."""
    inputs = take_inputs(data, asked, "calibration_data", adapter)
    examples = sum(batch_length(x) for x in inputs)
    notes = []
    if len(inputs) < asked:
        notes.append(
            f"the space asks for {asked} calibration batches and the data has {len(inputs)}: "
            f"the observers saw all {len(inputs)}"
        )
    if examples < FEW_CALIBRATION_EXAMPLES:
        notes.append(
            f"the observers saw only {examples} calibration example(s); static int8 ranges "
            f"from so few may not fit new data (give {FEW_CALIBRATION_EXAMPLES} or more)"
        )
    if not notes:
        return None
    text = "; ".join(notes)
    return text[0].upper() + text[1:] + "."


def first_examples(inputs: Any, count: int = 1) -> Any:
    """Model inputs cut to their first ``count`` examples."""
    return map_tensors(inputs, lambda t: t[:count])


def load_weights_only(file, label: str, more_than_tensors: str) -> Any:
    """``torch.load(file, weights_only=True)``: a file that would need code to unpickle is
    refused (``more_than_tensors`` says what to do), any other failure named as unreadable."""
    import pickle

    from autoquant.errors import ConfigError

    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"The {label} {str(file)!r} holds more than tensors: {more_than_tensors}"
        ) from None
    except Exception as err:  # noqa: BLE001 - any other read failure means a corrupt file
        raise ConfigError(
            f"The {label} {str(file)!r} cannot be read (corrupt or not a torch file): "
            f"{type(err).__name__}: {err}."
        ) from None
