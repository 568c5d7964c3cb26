"""Latency: models timed in alternation on one example batch, so noise hits them alike.

Quantized is not always faster: on a small MLP every int8 variant ran slower than float on a
2-core x86 machine. So speed is always measured, never assumed, and always as a ratio against
the float model timed in the same process, in alternation, under the same scenario.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from autoquant.engine.backends import quantized_engine
from autoquant.engine.compile import canonical, inductor_settings
from autoquant.engine.data import (
    DEFAULT_ADAPTER,
    batch_length,
    call,
    concat,
    map_tensors,
    shape_signature,
)
from autoquant.engine.methods import get_method
from autoquant.engine.quantized import QuantizedModel
from autoquant.errors import DataError
from autoquant.measure.machine import watching


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def example_batch(data: Iterable, batch_size: int, task: Any = None) -> Any:
    """Model inputs of exactly ``batch_size`` examples taken from ``data`` (through the task's
    adapter): the user's own inputs, sequence length and all. Batches shaped like the first
    are joined, cycling through the data if it is short."""
    adapter = getattr(task, "adapter", DEFAULT_ADAPTER)
    pieces, count, signature = [], 0, None
    while count < batch_size:
        before = count
        for batch in data:
            x = adapter.inputs(batch)
            signature = signature or shape_signature(x)
            if shape_signature(x) != signature:
                continue  # another sequence length: cannot be joined with the first batch
            pieces.append(x)
            count += batch_length(x)
            if count >= batch_size:
                break
        if count == before:
            raise DataError("The evaluation data is empty: no batch to time the model on.")
    return map_tensors(concat(pieces), lambda t: canonical(t[:batch_size]))


@dataclasses.dataclass(frozen=True)
class Timing:
    median_ms: float
    spread_ms: float  # interquartile range
    # one per round, in round order: the models' samples of one round were taken together,
    # so they pair up (``speedup_interval``)
    samples_ms: tuple[float, ...] = ()
    # the share of time this process's threads waited for a core during the rounds (the same
    # for every model of one run): other work competing for the cores (``machine``)
    waited_share: float | None = None


@torch.no_grad()
def measure_latency(
    models: dict[str, nn.Module],
    example: Any,
    threads: int,
    *,
    budget_s: float = 1.0,
    min_rounds: int = 7,
    max_rounds: int = 50,
) -> dict[str, Timing]:
    """Per-call latency of each model, timed in alternation so noise hits all of them alike.

    Each model is warmed up, then rounds run every model once (order rotated each round) until
    ``budget_s`` seconds of timing per model or ``max_rounds``. Calls that are too short for the
    clock are repeated inside one sample.

    Every sample follows an untimed call of the same model: a deployed model serves call after
    call, with its weights in cache, while the other models' calls between its samples would
    evict them. Measured on resnet18 at batch 1: timed cold, float ran 12.4 ms and its static
    int8 models 1.46 ms (fbgemm) to 1.64 ms (x86), a 12% gap between engines; timed warm,
    10.4 ms and 0.98 ms for both.
    """
    names = list(models)
    example = map_tensors(example, canonical)  # the strides compiled models were compiled for
    # Time the bare quantized module with its engine set once, as it would be deployed; the
    # QuantizedModel wrapper's per-call engine switch would otherwise be counted against it.
    # (Only the methods that run on torch's quantized engine: an ONNX Runtime or torchao
    # model's backend field is a default that must not switch a torch.ao model's engine off.)
    backends = {
        m.config.backend
        for m in models.values()
        if isinstance(m, QuantizedModel) and "backend" in get_method(m.config.method).uses
    }
    # (Compiled when the model is deployed compiled: ``deployed``.)
    models = {n: m.deployed if isinstance(m, QuantizedModel) else m for n, m in models.items()}
    engine = quantized_engine(backends.pop()) if len(backends) == 1 else contextlib.nullcontext()
    # inductor_settings: a compiled model whose Dynamo cache was cleared compiles again on its
    # warm-up call, with the settings (and threads) it was first compiled with.
    with torch_threads(threads), engine, inductor_settings(threads):
        inner = {}
        for name in names:
            start = time.perf_counter()
            call(models[name], example)  # warm-up; also sizes the inner loop
            call(models[name], example)
            once = max((time.perf_counter() - start) / 2, 1e-6)
            inner[name] = max(1, int(0.002 / once))
        samples: dict[str, list[float]] = {name: [] for name in names}
        spent = 0.0
        rounds = 0
        with watching() as watch:
            while rounds < max_rounds and (rounds < min_rounds or spent < budget_s * len(names)):
                order = names[rounds % len(names) :] + names[: rounds % len(names)]
                for name in order:
                    warm = time.perf_counter()
                    call(models[name], example)  # untimed: brings its weights back into cache
                    start = time.perf_counter()
                    for _ in range(inner[name]):
                        call(models[name], example)
                    elapsed = time.perf_counter() - start
                    spent += time.perf_counter() - warm
                    samples[name].append(elapsed / inner[name] * 1000)
                rounds += 1
    result = {}
    for name, values in samples.items():
        quartiles = statistics.quantiles(values, n=4)
        result[name] = Timing(
            statistics.median(values),
            quartiles[2] - quartiles[0],
            tuple(values),
            watch.waited_share,
        )
    return result
