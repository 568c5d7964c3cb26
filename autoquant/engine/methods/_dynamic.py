"""What the two dynamic methods share: torch.ao.quantization.quantize_dynamic on named layers."""

from __future__ import annotations

import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic

#: Layer types the dynamic methods quantize (weights ahead of time, activations on the fly).
DYNAMIC_TYPES = (nn.Linear, nn.LSTM, nn.GRU)


def quantize_dynamic_layers(model: nn.Module, layers, qconfig_for, dtype: torch.dtype):
    """Quantize the named layers of a dynamic-capable type; ``qconfig_for(module)`` picks each
    layer's qconfig."""
    modules = dict(model.named_modules())
    spec = {
        name: qconfig_for(modules[name])
        for name in layers
        if type(modules[name]) in DYNAMIC_TYPES  # exact type: attention's out_proj stays float
    }
    return quantize_dynamic(model, qconfig_spec=spec, dtype=dtype, inplace=True)
