"""ort_dynamic_int8: ONNX Runtime's quantize_dynamic: int8 weights, activations quantized at run
time (MatMulInteger, ConvInteger) on the chosen layers."""

from autoquant.engine.methods import register_method
from autoquant.engine.methods._ort import QUANT_TYPES, OrtMethod, gemm_as_matmul


@register_method
class OrtDynamicInt8(OrtMethod):
    name = "ort_dynamic_int8"
    simplicity = 2
    repairable = True
    quantized_as = ("dynamic", "qint8")
    summary = (
        "ONNX Runtime quantize_dynamic: int8 weights, activations quantized at run time; "
        "Linear and Conv layers, run in ONNX Runtime."
    )
    uses = frozenset({"weight_observer", "reduce_range", "weight_dtype", "keep_float"})

    def transform(self, proto, config, *, nodes, folder, **_):
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # ONNX Runtime has no dynamic int8 Gemm (the exporter's Linear on 2-D inputs).
        proto = gemm_as_matmul(proto, set(nodes))
        out = folder / "quantized.onnx"
        # Only the chosen layers' nodes: a MatMul of two activations (attention's scores) is
        # no layer and stays in float, as in the PyTorch methods.
        quantize_dynamic(
            proto,
            out,
            nodes_to_quantize=sorted(nodes),
            per_channel=config.weight_observer == "per_channel_minmax",
            reduce_range=config.reduce_range,
            weight_type=getattr(QuantType, QUANT_TYPES[config.weight_dtype]),
        )
        return onnx.load(out)
