"""ort_fp32: the float model exported to ONNX and run in ONNX Runtime, no quantization."""

from autoquant.engine.methods import register_method
from autoquant.engine.methods._ort import OrtMethod


@register_method
class OrtFloat32(OrtMethod):
    name = "ort_fp32"
    simplicity = 1
    summary = (
        "The float model exported to ONNX (torch.onnx.export) and run in ONNX Runtime: its "
        "graph optimizations and kernels, no quantization."
    )
