"""torchao_int4_weight_only: 4-bit weights in groups of 32, float activations, on CPU.

torchao's ``Int4WeightOnlyConfig`` cannot run on this CPU with torch 2.14.1 + torchao 0.18
(every packing format was tried; the errors are in ``CPU_INT4_ERRORS``). What runs is
``IntxWeightOnlyConfig(weight_dtype=torch.int4)``: int4 values and per-group scales, kept one
value per byte and dequantized in the matmul; 4-bit accuracy, int8 size.
"""

from autoquant.engine.methods import register_method
from autoquant.engine.methods._torchao import QuantizeMethod

#: What ``Int4WeightOnlyConfig`` raised per packing format on CPU (torch 2.14.1, torchao 0.18).
CPU_INT4_ERRORS = {
    "plain": "ImportError: Requires mslk >= 1.0.0",
    "preshuffled": "ImportError: Requires mslk >= 1.0.0",
    "plain_int32": "NotImplementedError: Int4PlainInt32Tensor does not support device 'cpu' yet.",
    "tile_packed_to_4d": (
        "AssertionError: Only bfloat16 is supported for Int4TilePackedTo4dTensor, got "
        "torch.float32; in bfloat16: RuntimeError: Found no NVIDIA driver on your system."
    ),
}

#: Weights are quantized in groups of this many input features; narrower layers stay float.
GROUP_SIZE = 32


@register_method
class TorchaoInt4WeightOnly(QuantizeMethod):
    name = "torchao_int4_weight_only"
    requires = "linear"
    summary = (
        "torchao quantize_: int4 weights in groups of 32, float activations "
        "(IntxWeightOnlyConfig int4; Int4WeightOnlyConfig has no CPU kernel); Linear layers."
    )
    uses = frozenset({"keep_float"})
    mode = "weight_only"
    weight_dtype = "int4"
    group_size = GROUP_SIZE

    def torchao_config(self, config):
        import torch
        from torchao.quantization import IntxWeightOnlyConfig, PerGroup

        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(GROUP_SIZE))
