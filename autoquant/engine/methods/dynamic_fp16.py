"""dynamic_fp16: float16 weights for Linear, LSTM and GRU layers, computed in float."""

import torch
from torch.ao.quantization import float16_dynamic_qconfig

from autoquant.engine.methods import register_method
from autoquant.engine.methods._dynamic import quantize_dynamic_layers
from autoquant.engine.methods.base import Method

_NO_FP16_PREPACK = (
    "its kernels have no float16 weight packing (linear_prepack_fp16 is not supported)"
)


@register_method
class DynamicFloat16(Method):
    name = "dynamic_fp16"
    requires = "dynamic"
    simplicity = 1
    summary = "float16 weights (half the size), float compute; Linear, LSTM and GRU layers."
    uses = frozenset({"backend", "keep_float"})
    unsupported_backends = {"qnnpack": _NO_FP16_PREPACK, "onednn": _NO_FP16_PREPACK}

    def quantize(self, model, config, *, layers, **_):
        return quantize_dynamic_layers(
            model, layers, lambda module: float16_dynamic_qconfig, torch.float16
        )
