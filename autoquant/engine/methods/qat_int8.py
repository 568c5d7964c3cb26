"""qat_int8: a short fine-tuning with fake quantization in the loop, then int8 conversion."""

import torch
from torch.ao.quantization.quantize_fx import convert_fx, prepare_qat_fx

from autoquant.engine.data import as_args, call
from autoquant.engine.methods import register_method
from autoquant.engine.methods._static import (
    fx_trace_error,
    qconfig_mapping,
    releasing_fx_models,
    static_restriction,
)
from autoquant.engine.methods.base import Method
from autoquant.engine.observers import qat_qconfig
from autoquant.errors import UnsupportedError


@register_method
class QatInt8(Method):
    name = "qat_int8"
    requires = "fx"
    simplicity = 4
    repairable = True
    summary = (
        "Quantization-aware training: a few epochs of fake-quant fine-tuning on the training "
        "data, then static int8 (FX graph mode)."
    )
    uses = frozenset(
        {
            "backend",
            "activation_observer",
            "weight_observer",
            "qscheme",
            "reduce_range",
            "keep_float",
            "qat_epochs",
            "qat_lr",
        }
    )
    needs_calibration = True
    needs_training = True
    # convert_fx gives the same quantized modules as static int8: only the weights and scales
    # differ (measured on resnet18: its fine-tuning costs 10 to 22 s a trial, static 0.6 s).
    deploys_as = "static_int8"

    notes = {"onednn": "qscheme symmetric only"}

    def unsupported_reason(self, config):
        return super().unsupported_reason(config) or static_restriction(config)

    def quantize(
        self, model, config, *, layers, calibration_inputs, train_data, loss_fn, adapter, **_
    ):
        trace_error = fx_trace_error(model)
        if trace_error is not None:
            raise UnsupportedError(
                f"qat_int8 needs a model torch.fx can trace; this one cannot be traced "
                f"({trace_error})."
            )
        mapping = qconfig_mapping(model, qat_qconfig(config), layers)
        with releasing_fx_models():
            prepared = prepare_qat_fx(model.train(), mapping, as_args(calibration_inputs[0])[0])
            optimizer = torch.optim.SGD(prepared.parameters(), lr=config.qat_lr, momentum=0.9)
            # Seeded in a forked RNG: the same config rebuilds the same model (dropout
            # included) without touching the caller's random state.
            with torch.random.fork_rng():
                torch.manual_seed(0)
                for _ in range(config.qat_epochs):
                    for batch in train_data:
                        optimizer.zero_grad()
                        targets = adapter.targets(batch)
                        if targets is None:
                            raise UnsupportedError(
                                "qat_int8 trains on targets, and the training batches carry "
                                "none (give (inputs, targets) batches or a target_fn)."
                            )
                        outputs = adapter.output(call(prepared, adapter.inputs(batch)))
                        loss_fn(outputs, targets).backward()
                        optimizer.step()
            return convert_fx(prepared.eval())
