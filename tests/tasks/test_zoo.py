import pytest
import torch

from autoquant import ConfigError
from autoquant.measure import score
from autoquant.tasks import digits_task
from autoquant.tasks.zoo import build_zoo_model, cache_dir, load_zoo_model, zoo_models

SMALL = ["mlp", "cnn", "lstm", "transformer"]
LARGE = ["resnet18", "mobilenet_v2"]


@pytest.mark.parametrize("name", SMALL + [pytest.param(n, marks=pytest.mark.slow) for n in LARGE])
def test_zoo_model_reaches_95_percent_on_test(name):
    task = digits_task(name)
    accuracy = score(task.model, task.test_data, task.metric)
    print(f"{name}: test accuracy {accuracy:.2%}")
    assert accuracy >= 0.95


def test_cache_is_reused_and_loaded_with_weights_only(monkeypatch):
    load_zoo_model("mlp")  # trained or cached
    calls = []
    original = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    logs = []
    load_zoo_model("mlp", log=logs.append)
    assert calls == [True]
    assert logs == []  # no training: the cache answered


def test_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOQUANT_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    logs = []
    load_zoo_model("mlp", log=logs.append)
    assert (tmp_path / "zoo").is_dir() and any("trained zoo model 'mlp'" in m for m in logs)


def test_unknown_zoo_model():
    with pytest.raises(ConfigError, match="'model' parameter must be one of"):
        build_zoo_model("vgg")
    assert set(zoo_models()) == set(SMALL + LARGE + ["cnn_outliers"])


def test_outlier_cnn_has_the_cnn_outputs_and_breaks_int8_unless_blocks_stay_float():
    from autoquant import QuantConfig, apply

    cnn, outliers = digits_task("cnn"), digits_task("cnn_outliers")
    x = torch.cat([inputs for inputs, _ in outliers.validation_data])
    with torch.no_grad():
        torch.testing.assert_close(outliers.model(x), cnn.model(x), rtol=1e-4, atol=1e-4)
        block3 = outliers.model.block3(
            outliers.model.pool(outliers.model.block2(outliers.model.block1(x)))
        )
    peak = block3.amax(dim=(0, 2, 3))
    assert peak[:4].min() > 20 * peak[4:].max()  # four channels far beyond the rest

    float_accuracy = score(outliers.model, outliers.validation_data, outliers.metric)
    drops = {}
    for keep in [(), ("block3.0", "fc")]:
        config = QuantConfig(
            method="static_int8", weight_observer="per_channel_minmax", keep_float=keep
        )
        quantized = apply(outliers.model, config, outliers.calibration_data)
        accuracy = score(quantized, outliers.validation_data, outliers.metric)
        drops[keep] = 100 * (float_accuracy - accuracy)
    assert drops[()] > 1.0  # all int8 breaks a 1-point budget
    assert drops[("block3.0", "fc")] <= 0.5  # block 3 and the head in float recover it
