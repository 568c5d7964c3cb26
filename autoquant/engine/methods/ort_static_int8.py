"""ort_static_int8: ONNX Runtime's quantize_static in QDQ format: int8 weights and activations,
activation ranges calibrated on the task's calibration batches."""

import contextlib
import io

from autoquant.engine.methods import register_method
from autoquant.engine.methods._ort import QUANT_TYPES, OrtMethod, feed_reader
from autoquant.engine.observers import PERCENTILE

#: The activation observers as ONNX Runtime's calibration methods. ``histogram`` is Entropy:
#: both pick a clipping range from a histogram of the activations (torch by the quantization
#: error, ONNX Runtime by the KL divergence); moving averages are MinMax's own option;
#: ``percentile`` is Percentile at the same share of values as torch's ``PercentileObserver``.
CALIBRATION = {
    "minmax": ("MinMax", {}),
    "moving_average_minmax": ("MinMax", {"CalibMovingAverage": True}),
    "histogram": ("Entropy", {}),
    "percentile": ("Percentile", {"CalibPercentile": PERCENTILE}),
}


#: The operators quantized (and calibrated): the layers and what runs between them in int8.
#: Not Add or Mul: in a transformer they carry the attention mask, whose range reaches the
#: float minimum (calibrating it failed: "Too many bins for data range" on MiniLM).
STATIC_OPS = [
    "Conv",
    "MatMul",
    "Gemm",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
]


@register_method
class OrtStaticInt8(OrtMethod):
    name = "ort_static_int8"
    simplicity = 3
    repairable = True
    needs_calibration = True
    quantized_as = ("static", "qint8")
    summary = (
        "ONNX Runtime quantize_static (QDQ): int8 weights and activations calibrated on the "
        "calibration data (MinMax, Entropy or Percentile); run in ONNX Runtime."
    )
    uses = frozenset(
        {
            "activation_observer",
            "weight_observer",
            "qscheme",
            "reduce_range",
            "activation_dtype",
            "weight_dtype",
            "keep_float",
            "calibration_batches",
        }
    )

    def transform(self, proto, config, *, float_nodes, calibration_feeds, folder, **_):
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        method, options = CALIBRATION[config.activation_observer]
        out = folder / "quantized.onnx"
        # the Entropy calibrator prints its progress to stdout: kept out of the user's output
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                proto,
                out,
                feed_reader(calibration_feeds),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=STATIC_OPS,
                nodes_to_exclude=float_nodes,
                per_channel=config.weight_observer == "per_channel_minmax",
                reduce_range=config.reduce_range,
                activation_type=getattr(QuantType, QUANT_TYPES[config.activation_dtype]),
                weight_type=getattr(QuantType, QUANT_TYPES[config.weight_dtype]),
                calibrate_method=getattr(CalibrationMethod, method),
                extra_options={"ActivationSymmetric": config.qscheme == "symmetric", **options},
            )
        return onnx.load(out)
