"""The percentile observer: its range cuts the rare outliers that min/max keeps."""

import numpy as np
import pytest
import torch
from torch.ao.quantization import HistogramObserver, MinMaxObserver

from autoquant import QuantConfig
from autoquant.engine import observers
from autoquant.engine.observers import PERCENTILE, PercentileObserver, percentile_range
from autoquant.measure import score_and_answers


def test_percentile_range_matches_the_quantiles_of_the_values():
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(200_000, generator=generator)
    histogram = torch.histc(values, bins=2048, min=values.min(), max=values.max())
    low, high = percentile_range(histogram, values.min(), values.max(), percentile=99.0)
    expected = np.quantile(values.numpy(), [0.005, 0.995])
    width = float(values.max() - values.min()) / 2048
    # within the bin the cut falls in (kept whole)
    assert abs(float(low) - expected[0]) <= width
    assert abs(float(high) - expected[1]) <= width


def test_the_percentile_observer_clips_a_rare_outlier_min_max_keeps():
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(1_000_000, generator=generator)  # the bulk in [0, 1)
    values[123] = 1000.0  # one value in a million: below PERCENTILE's cut
    assert (100 - PERCENTILE) / 200 * len(values) > 1 / 2
    observers = {"percentile": PercentileObserver(), "minmax": MinMaxObserver()}
    for observer in observers.values():
        observer(values)
    scale = {name: float(o.calculate_qparams()[0]) for name, o in observers.items()}
    assert scale["minmax"] >= 1000 / 255  # the whole range: the bulk in one step
    # the bulk's range, to the edge of the histogram bin (1000 / 2048 wide) where it ends
    assert scale["percentile"] <= (1 + 1000 / 2048) / 255


def test_the_percentile_observer_differs_from_the_histogram_search():
    values = torch.randn(100_000, generator=torch.Generator().manual_seed(1))
    ranges = {}
    for name, observer in {"percentile": PercentileObserver(), "hist": HistogramObserver()}.items():
        observer(values)
        ranges[name] = float(observer.calculate_qparams()[0])
    # at 99.999 % the percentile range keeps nearly all of a normal's tails; the L2 search cuts
    # them harder
    assert ranges["percentile"] > ranges["hist"]


@pytest.mark.parametrize("method", ["static_int8", "pt2e_static_int8"])
def test_percentile_calibrates_the_torch_methods(method, cnn_task, monkeypatch):
    if method == "pt2e_static_int8":
        pytest.importorskip("torchao")
    ranges = []

    def counted(*args, **kwargs):
        ranges.append(percentile_range(*args, **kwargs))
        return ranges[-1]

    monkeypatch.setattr(observers, "percentile_range", counted)
    config = QuantConfig(method=method, activation_observer="percentile", calibration_batches=2)
    quantized = cnn_task.build(config)
    assert len(ranges) >= 3  # one range per activation observed (input, convolutions, fc)
    float_score, _ = score_and_answers(cnn_task.model, cnn_task.test_data, cnn_task)
    score, _ = score_and_answers(quantized, cnn_task.test_data, cnn_task)
    assert score > float_score - 0.03
