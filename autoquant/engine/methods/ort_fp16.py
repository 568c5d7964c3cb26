"""ort_fp16: the ONNX model converted to float16 (weights and compute), run in ONNX Runtime."""

from autoquant.engine.methods import register_method
from autoquant.engine.methods._ort import OrtMethod


@register_method
class OrtFloat16(OrtMethod):
    name = "ort_fp16"
    simplicity = 1
    quantized_as = ("dynamic", "float16")
    summary = (
        "The ONNX model in float16 (onnxruntime.transformers.float16; inputs and outputs stay "
        "float32), run in ONNX Runtime: half the size, float16 kernels where the CPU has them."
    )
    uses = frozenset({"keep_float"})

    def transform(self, proto, config, *, float_nodes, **_):
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # the layers kept in float (and products that are no layer) stay float32
        return convert_float_to_float16(proto, keep_io_types=True, node_block_list=float_nodes)

    def converted(self, result, nodes):
        return set(nodes)  # every node not in the block list is float16
