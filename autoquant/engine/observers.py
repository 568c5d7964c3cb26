"""Observer names -> torch.ao observers, and the QConfig a QuantConfig asks for."""

from __future__ import annotations

import torch
from torch.ao.quantization import (
    FakeQuantize,
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
    QConfig,
)

#: The share of an activation's values (in %) a ``percentile`` range keeps, the rest cut evenly
#: from both tails: ONNX Runtime's default for its Percentile calibration.
PERCENTILE = 99.999


def percentile_range(
    histogram: torch.Tensor, low: torch.Tensor, high: torch.Tensor, percentile: float = PERCENTILE
) -> tuple[torch.Tensor, torch.Tensor]:
    """The range that keeps ``percentile`` % of the values a histogram of even bins over
    [``low``, ``high``] counted, cutting (100 - percentile) / 2 % from each tail."""
    cdf = torch.cumsum(histogram.double(), 0) / histogram.sum().double()
    cut = torch.tensor([(100.0 - percentile) / 200.0, 1.0 - (100.0 - percentile) / 200.0])
    first, last = torch.searchsorted(cdf, cut.double()).clamp(max=len(histogram) - 1).tolist()
    width = (high - low) / len(histogram)
    # the bins where the cuts fall are kept whole
    return low + width * first, torch.minimum(low + width * (last + 1), high)


class PercentileObserver(HistogramObserver):
    """``HistogramObserver``'s histogram, with the range cut at percentiles (``PERCENTILE``)
    instead of by its search for the least quantization error: outliers are clipped by how
    rare they are, as ONNX Runtime's Percentile calibration does."""

    def _non_linear_param_search(self) -> tuple[torch.Tensor, torch.Tensor]:
        return percentile_range(self.histogram, self.min_val, self.max_val)


#: Activation observers: how the range of each activation tensor is estimated in calibration.
ACTIVATION_OBSERVERS = {
    "minmax": MinMaxObserver,
    "moving_average_minmax": MovingAverageMinMaxObserver,
    "histogram": HistogramObserver,
    "percentile": PercentileObserver,
}

#: Weight observers: one range per tensor, or one per output channel.
WEIGHT_OBSERVERS = {
    "minmax": MinMaxObserver,
    "per_channel_minmax": PerChannelMinMaxObserver,
}

# Fake-quant training needs observers that follow a moving average (the weights change).
_QAT_WEIGHT_OBSERVERS = {
    "minmax": MovingAverageMinMaxObserver,
    "per_channel_minmax": MovingAveragePerChannelMinMaxObserver,
}

QSCHEMES = ("affine", "symmetric")

#: The int8 types of activations and weights. torch's x86 kernels take unsigned activations and
#: signed weights (the defaults); ONNX Runtime's methods can search the others.
INT8_DTYPES = ("quint8", "qint8")

_PER_TENSOR = {"affine": torch.per_tensor_affine, "symmetric": torch.per_tensor_symmetric}
_PER_CHANNEL = {"affine": torch.per_channel_affine, "symmetric": torch.per_channel_symmetric}


def _activation_kwargs(config) -> dict:
    return {
        "dtype": torch.quint8,
        "qscheme": _PER_TENSOR[config.qscheme],
        "quant_min": 0,
        "quant_max": 127 if config.reduce_range else 255,
    }


def _weight_kwargs(config) -> dict:
    per_channel = config.weight_observer == "per_channel_minmax"
    kwargs = {
        "dtype": torch.qint8,
        "qscheme": (_PER_CHANNEL if per_channel else _PER_TENSOR)[config.qscheme],
        "quant_min": -128,
        "quant_max": 127,
    }
    if per_channel:
        kwargs["ch_axis"] = 0
    return kwargs


def static_qconfig(config) -> QConfig:
    """The post-training QConfig for ``config`` (observers, qscheme, reduce_range)."""
    activation = ACTIVATION_OBSERVERS[config.activation_observer]
    weight = WEIGHT_OBSERVERS[config.weight_observer]
    return QConfig(
        activation=activation.with_args(**_activation_kwargs(config)),
        weight=weight.with_args(**_weight_kwargs(config)),
    )


def qat_qconfig(config) -> QConfig:
    """The fake-quant QConfig used while fine-tuning with quantization in the loop."""
    activation = ACTIVATION_OBSERVERS[config.activation_observer]
    weight = _QAT_WEIGHT_OBSERVERS[config.weight_observer]
    return QConfig(
        activation=FakeQuantize.with_args(observer=activation, **_activation_kwargs(config)),
        weight=FakeQuantize.with_args(observer=weight, **_weight_kwargs(config)),
    )
