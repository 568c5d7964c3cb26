"""Model analysis (``autoquant.inspect``): what a model offers to quantization, before a search.

The quantizable layers with their parameters and share of compute, whether torch.fx can trace
the model (and where it breaks), which methods and backends apply, and the float latency and
size. Its ``features`` are what the prior rules and the learned ranker read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from autoquant._warnings import quietly
from autoquant.engine.data import call, concat, first_examples
from autoquant.engine.layers import quantizable_layers
from autoquant.engine.methods import available_methods, get_method
from autoquant.engine.methods._dynamic import DYNAMIC_TYPES
from autoquant.engine.methods._static import EAGER_TYPES, fx_trace_error
from autoquant.measure import measure_latency, serialized_size

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
RECURRENT_TYPES = (nn.LSTM, nn.GRU)


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    params: int
    param_share: float
    macs: int  # multiply-accumulates for the example input
    compute_share: float


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """What ``inspect`` found; ``features`` feeds the prior rules and the learned ranker."""

    layers: list[LayerInfo]
    total_params: int
    fx_traceable: bool
    fx_error: str | None
    methods: dict[str, list[str]]  # applicable method -> backends it runs on
    float_latency_ms: float
    size_bytes: int
    features: dict[str, float]
    #: The Linear layer that runs last (the classifier of most models), None when the last
    #: quantizable layer to run is not a Linear.
    output_linear: str | None = None
    #: Why torch.export cannot capture the model (None when it can).
    export_error: str | None = None
    #: Methods this model cannot take, each with the reason (what cannot capture it).
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)

    def table(self) -> str:
        from autoquant.report.tables import format_table

        rows = [
            {
                "layer": x.name,
                "type": x.type,
                "params": f"{x.params:,}",
                "params %": f"{100 * x.param_share:.1f}",
                "compute %": f"{100 * x.compute_share:.1f}",
            }
            for x in self.layers
        ]
        lines = [
            format_table(rows, ["layer", "type", "params", "params %", "compute %"]),
            "",
            f"parameters: {self.total_params:,}; float size {self.size_bytes / 1024:.0f} KiB; "
            f"float latency {self.float_latency_ms:.3f} ms (batch 1, 1 thread)",
            "torch.fx: "
            + ("traceable" if self.fx_traceable else f"NOT traceable: {self.fx_error}"),
            "torch.export: "
            + ("captures it" if self.export_error is None else f"FAILS: {self.export_error}"),
            f"classifier (the Linear that runs last): {self.output_linear or 'none'}",
            "methods that apply (backends): "
            + "; ".join(f"{m} ({', '.join(b)})" for m, b in self.methods.items()),
            *[f"left out: {m}: {why}" for m, why in self.unavailable.items()],
        ]
        return "\n".join(lines)


def _count_macs(model: nn.Module, example: Any) -> dict[str, int]:
    """Multiply-accumulates of each quantizable layer on ``example``, from forward hooks."""
    macs: dict[str, int] = {}  # ordered by each layer's last call (pop, then insert again)
    hooks = []

    def hook(name):
        def record(module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(module, CONV_TYPES):
                per_output = (
                    module.in_channels
                    // module.groups
                    * int(torch.tensor(module.kernel_size).prod())
                )
                macs[name] = macs.pop(name, 0) + out.numel() * per_output
            elif isinstance(module, nn.Linear):
                macs[name] = macs.pop(name, 0) + out.numel() * module.in_features
            elif isinstance(module, RECURRENT_TYPES):
                steps = out.shape[1] if module.batch_first else out.shape[0]
                batch = out.shape[0] if module.batch_first else out.shape[1]
                weights = sum(p.numel() for n, p in module.named_parameters() if "weight" in n)
                macs[name] = macs.pop(name, 0) + steps * batch * weights

        return record

    for name, module in model.named_modules():
        if name and isinstance(module, (*CONV_TYPES, nn.Linear, *RECURRENT_TYPES)):
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            call(model, example)
    finally:
        for h in hooks:
            h.remove()
    return macs


@quietly
def inspect(model: nn.Module, example: Any, methods: Iterable[str] | None = None) -> ModelReport:
    """Analyse ``model`` on ``example`` (one input batch, batch size 1 is best).

    Args:
        model: The float model (not modified).
        example: Model inputs: a tensor, a tuple of positional or a dict of keyword
            arguments.
        methods: The methods that matter (a search's space); ONNX export, which takes
            seconds on a large model, is tried only when one of them runs in ONNX Runtime.
            Default: every registered method.
    """
    example = first_examples(example)
    model = model.eval()
    layers = quantizable_layers(model)
    macs = _count_macs(model, example)
    total_macs = sum(macs.values()) or 1
    infos = [
        LayerInfo(
            x.name,
            x.type,
            x.params,
            x.param_share,
            macs.get(x.name, 0),
            macs.get(x.name, 0) / total_macs,
        )
        for x in layers
    ]
    error = fx_trace_error(model)
    export_error = _export_error(model, example)
    wanted = list(methods) if methods is not None else available_methods()
    if any(get_method(m).requires == "onnx" for m in wanted):
        onnx_error = _onnx_error(model, example)
    else:
        onnx_error = "not checked: no ONNX Runtime method was asked for"
    modules = dict(model.named_modules())
    last = next(reversed(macs), None)  # the layer whose last call came last
    kinds = {
        "dynamic": any(type(modules[x.name]) in DYNAMIC_TYPES for x in layers),
        "static": error is None or any(type(modules[x.name]) in EAGER_TYPES for x in layers),
        "fx": error is None and bool(layers),
        # torchao: PT2E goes through torch.export, not FX; quantize_ replaces Linear weights
        "export": export_error is None and bool(layers),
        "linear": any(isinstance(modules[x.name], nn.Linear) for x in layers),
        "onnx": onnx_error is None,
    }
    needs = {m: get_method(m).requires for m in available_methods()}
    why = {
        "dynamic": "it has no Linear or recurrent layer for dynamic quantization",
        "static": f"torch.fx cannot trace it ({error}) and it has no Linear or Conv to wrap",
        "fx": f"it needs a torch.fx graph and torch.fx cannot trace the model ({error})"
        if error
        else "it has no quantizable layer",
        "export": "it needs torch.export and torch.export cannot capture the model "
        f"({export_error})"
        if export_error
        else "it has no quantizable layer",
        "linear": "it has no Linear layer",
        "onnx": f"ONNX Runtime cannot run it: {onnx_error}",
    }
    unavailable = {
        name: why[needs[name]]
        for name in available_methods()
        if needs[name] is not None and not kinds.get(needs[name], False)
    }
    methods = {}
    for name in available_methods():
        if needs[name] is None or kinds.get(needs[name], False):
            impl = get_method(name)
            methods[name] = (
                [
                    b
                    for b in ("x86", "fbgemm", "qnnpack", "onednn")
                    if b not in impl.unsupported_backends
                ]
                if "backend" in impl.uses
                else []
            )
    timing = measure_latency({"float": model}, example, threads=1, budget_s=0.3)["float"]

    def share(types) -> float:
        return float(sum(i.compute_share for i in infos if type(modules[i.name]) in types))

    features = {
        "log_params": float(torch.tensor(sum(p.numel() for p in model.parameters()) + 1.0).log()),
        "log_macs": float(torch.tensor(float(total_macs)).log()),
        "n_layers": float(len(infos)),
        "conv_share": share(CONV_TYPES),
        "linear_share": share((nn.Linear,)),
        "recurrent_share": share(RECURRENT_TYPES),
        "depthwise_share": sum(
            i.compute_share
            for i in infos
            if isinstance(modules[i.name], CONV_TYPES) and modules[i.name].groups > 1
        ),
        "fx_traceable": float(error is None),
        "log_float_latency_ms": float(torch.tensor(timing.median_ms).log()),
    }
    return ModelReport(
        layers=infos,
        total_params=sum(p.numel() for p in model.parameters()),
        fx_traceable=error is None,
        fx_error=error,
        methods=methods,
        float_latency_ms=timing.median_ms,
        size_bytes=serialized_size(model),
        features=features,
        output_linear=last if last and isinstance(modules[last], nn.Linear) else None,
        export_error=export_error,
        unavailable=unavailable,
    )


def _export_error(model: nn.Module, example: Any) -> str | None:
    """None when torch.export captures ``model`` on ``example``; otherwise why not."""
    from autoquant.engine.methods._torchao import export_program
    from autoquant.errors import UnsupportedError

    try:
        with torch.no_grad():
            export_program(model, concat([example, example]))  # batch 1 would be specialized
    except UnsupportedError as err:
        return str(err).split(": ", 1)[-1]
    return None


def _onnx_error(model: nn.Module, example: Any) -> str | None:
    """None when the model exports to ONNX and runs in ONNX Runtime; otherwise why not."""
    from autoquant.engine.ort import export_onnx, missing_reason
    from autoquant.errors import UnsupportedError

    reason = missing_reason()
    if reason:
        return reason
    try:
        export_onnx(model, example)
    except UnsupportedError as err:
        return str(err)
    return None
