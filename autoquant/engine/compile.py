"""torch.compile (Inductor) as autoquant uses it: weights frozen, one graph per input shape.

torchao's PT2E models reach their int8 kernels only through Inductor, so they are deployed
compiled, and a compiled model is only compared with the float model compiled the same way.
Two settings were measured on this platform (torch 2.14.1, x86 CPU):

- ``freezing``: without it Inductor on CPU ran resnet18 at 0.5x eager; with it the constant
  weights are folded and prepacked, which is also what lowers PT2E's int8 patterns to oneDNN.
- ``cpp.threads``: Inductor writes the thread count into its kernels at compile time
  (``#pragma omp parallel num_threads(N)``), whatever ``torch.set_num_threads`` says later;
  so a model is compiled for the threads it will be timed (and deployed) with.
- ``dynamic=False``: after a second input shape, automatic dynamic shapes made the frozen
  convolution lowering fail ("expected size 32==32, stride 1==64"); a graph per shape works.

Freezing is set with ``torch._inductor.config.patch`` around the first call: passed as
``torch.compile(options=...)`` it made PT2E's lowering fail ("UnsupportedOperatorException:
onednn.qconv_prepack.default"). A later input shape compiles again without freezing (correct,
not tuned); autoquant only times the shape compiled here.

Dynamo keeps one cache per ``forward`` code object, and every model of a study shares its
model class's ``forward``: past its ``recompile_limit`` (8) a new compile silently runs eager
(measured: the 9th MLP compiled in 0.00 s), and that code object then stays eager for good.
So the limits are raised process-wide (never lowered), and each compile enters through a
``forward`` code object of its own (``_fresh_entry``): measured, a study's float mobilenet_v2
compiled a second time on the same shape produced no new graph (it reused an entry of the shared
code object's cache), which the check below then mistook for an eager fallback. With a fresh
code object, a compile that produced no graph really runs eager (an LSTM: Dynamo skips RNN
modules), and that is an error, not a silent eager run.

Measured: compiling PT2E's Transformer on a batch of one mutated the module's ``position``
buffer in place and gave outputs 4.8 away from eager. So a copy is compiled (the module, the
user's float model included, is never touched), and a compiled output that departs from the
eager one is an error (``MAX_DEPARTURE``), not a fast wrong model.
"""

from __future__ import annotations

import copy
import time
import types
from typing import Any

import torch
from torch import nn

#: Inductor options of every compile autoquant does (see the module docstring).
INDUCTOR_OPTIONS: dict[str, bool] = {"freezing": True}

#: Largest allowed |compiled - eager| on the example, as a share of the largest |eager| output
#: (int8 kernels round differently from the reference graph, far less than this).
MAX_DEPARTURE = 0.1

#: Dynamo cache limits during autoquant's compiles: one entry per trial's model, many trials.
DYNAMO_LIMITS: dict[str, int] = {"recompile_limit": 100_000, "accumulated_recompile_limit": 100_000}


def inductor_settings(threads: int | None = None):
    """The Inductor settings of every autoquant compile, as a context (``config.patch``).

    Also held while compiled models are called: torchao's PT2E converts patterns with a strict
    ``torch.export``, which clears Dynamo's caches, and a model compiled before it compiles
    again on its next call (measured: resnet18's full-range PT2E model, built before another
    PT2E model, then ran at 1.02x eager float instead of 2.7x, recompiled without freezing).
    Within these settings that recompilation gives the same frozen kernels again.
    """
    options = {**INDUCTOR_OPTIONS, "cpp.threads": threads or torch.get_num_threads()}
    return torch._inductor.config.patch(options)


def canonical(x):
    """``x`` with the strides of a fresh contiguous tensor (anything else is returned as is).

    Dynamo guards on every stride, even of a size-1 dimension, and a call that fails a guard
    compiles the model again, outside the settings autoquant compiled it with. Measured: the
    digits batches, sliced from one NumPy array, have stride 0 on their channel dimension and a
    concatenated batch 64; resnet18's PT2E model, compiled on one and called with the other,
    recompiled without freezing and ran at 0.99x eager float instead of 2.63x.
    """
    if not isinstance(x, torch.Tensor):
        return x
    strides, step = [], 1
    for size in reversed(x.shape):
        strides.append(step)
        step *= max(size, 1)
    if x.stride() == tuple(reversed(strides)):
        return x
    return x.clone(memory_format=torch.contiguous_format)


class _Entry(nn.Module):
    """The module under compile, called through a ``forward`` that ``_fresh_entry`` gives a code
    object of its own."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def _fresh_entry(module: nn.Module) -> nn.Module:
    """``module`` wrapped so Dynamo sees a code object no earlier compile has a cache entry on."""
    template = _Entry.forward
    forward = types.FunctionType(template.__code__.replace(), template.__globals__, "forward")
    return type(type(module).__name__, (_Entry,), {"forward": forward})(module)


def compile_module(
    module: nn.Module, example: Any, *, threads: int | None = None
) -> tuple[nn.Module, float]:
    """Compile ``module`` with Inductor and run it once on ``example``.

    torch.compile is lazy: the work happens on the first call, so that call is what is timed.
    Another input shape compiles again (``dynamic=False``), at its first call.

    Args:
        module: The module to compile (it is not changed; the compiled one wraps it).
        example: An input batch of the shape the model will be timed on.
        threads: The CPU threads its kernels will run on (fixed at compile time); default:
            ``torch.get_num_threads()``.

    Returns:
        The compiled module and the seconds its first compilation took.
    """
    from torch._dynamo.utils import counters

    from autoquant.engine.data import call, map_tensors, pick_output

    example = map_tensors(example, canonical)  # every later call gets these strides (canonical)
    for name, limit in DYNAMO_LIMITS.items():
        # Process-wide: scoring compiles other shapes later, outside this function.
        setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), limit))
    compiled = torch.compile(_fresh_entry(copy.deepcopy(module)), dynamic=False)
    graphs = counters["stats"]["unique_graphs"]
    started = time.perf_counter()
    with inductor_settings(threads), torch.no_grad():
        call(compiled, example)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        got, expected = pick_output(call(compiled, example)), pick_output(call(module, example))
    departure = float((got - expected).abs().max())
    if departure > MAX_DEPARTURE * float(expected.abs().max()) + 1e-4:
        raise RuntimeError(
            f"torch.compile changed what {type(module).__name__} computes: on the example "
            f"its output is up to {departure:.3g} away from eager "
            f"(largest eager output {float(expected.abs().max()):.3g}); not used."
        )
    if counters["stats"]["unique_graphs"] == graphs:
        raise RuntimeError(
            f"torch.compile produced no graph for {type(module).__name__} (it would run eager "
            f"and be timed as compiled); see torch._dynamo's logs for why."
        )
    return compiled, seconds
