"""dynamic_int8: int8 weights, activations quantized on the fly (Linear, LSTM, GRU)."""

import torch
from torch import nn
from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

from autoquant.engine.methods import register_method
from autoquant.engine.methods._dynamic import quantize_dynamic_layers
from autoquant.engine.methods.base import Method


@register_method
class DynamicInt8(Method):
    name = "dynamic_int8"
    requires = "dynamic"
    simplicity = 2
    repairable = True
    summary = "int8 weights, activations quantized at run time; Linear, LSTM and GRU layers."
    uses = frozenset({"backend", "weight_observer", "keep_float"})

    def quantize(self, model, config, *, layers, **_):
        def qconfig_for(module):
            # The recurrent dynamic kernels take per-tensor weights only.
            per_channel = config.weight_observer == "per_channel_minmax"
            if per_channel and isinstance(module, nn.Linear):
                return per_channel_dynamic_qconfig
            return default_dynamic_qconfig

        return quantize_dynamic_layers(model, layers, qconfig_for, torch.qint8)
