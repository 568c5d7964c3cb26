"""static_int8: post-training static int8 (weights and activations), calibrated observers."""

from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from autoquant.engine.data import as_args
from autoquant.engine.methods import register_method
from autoquant.engine.methods._static import (
    calibrate,
    eager_wrap_quantize,
    fx_trace_error,
    qconfig_mapping,
    releasing_fx_models,
    static_restriction,
)
from autoquant.engine.methods.base import Method
from autoquant.engine.observers import static_qconfig
from autoquant.errors import UnsupportedError


@register_method
class StaticInt8(Method):
    name = "static_int8"
    requires = "static"
    simplicity = 3
    repairable = True
    summary = (
        "int8 weights and activations, ranges calibrated ahead of time; FX graph mode, "
        "eager per-layer wrapping for models FX cannot trace."
    )
    uses = frozenset(
        {
            "backend",
            "activation_observer",
            "weight_observer",
            "qscheme",
            "reduce_range",
            "keep_float",
            "calibration_batches",
        }
    )
    needs_calibration = True

    notes = {"onednn": "qscheme symmetric only"}

    def unsupported_reason(self, config):
        return super().unsupported_reason(config) or static_restriction(config)

    def quantize(self, model, config, *, layers, calibration_inputs, **_):
        qconfig = static_qconfig(config)
        trace_error = fx_trace_error(model)
        if trace_error is None:
            mapping = qconfig_mapping(model, qconfig, layers)
            with releasing_fx_models():
                prepared = prepare_fx(model, mapping, as_args(calibration_inputs[0])[0])
                calibrate(prepared, calibration_inputs)
                return convert_fx(prepared)
        model, wrapped = eager_wrap_quantize(model, qconfig, layers, calibration_inputs)
        if not wrapped:
            raise UnsupportedError(
                f"static_int8 cannot quantize this model: torch.fx cannot trace it "
                f"({trace_error}) and it has no Linear or Conv layer to quantize in eager mode."
            )
        return model
