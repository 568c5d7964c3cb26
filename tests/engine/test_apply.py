"""Bad input to autoquant.apply gets a clear AutoQuantError, never a traceback from inside torch."""

import pytest
import torch
from torch import nn

from autoquant import ConfigError, DataError, ModelError, QuantConfig, apply
from autoquant.engine.data import calibration_note
from tests.conftest import checksum


def test_unknown_method_or_backend(mlp_task):
    with pytest.raises(ConfigError, match="'method' parameter of QuantConfig must be one of"):
        apply(mlp_task.model, QuantConfig(method="int4"), mlp_task.calibration_data)
    with pytest.raises(ConfigError, match="'backend' parameter of QuantConfig"):
        QuantConfig(backend="arm")


def test_negative_calibration_size():
    with pytest.raises(ConfigError, match="'calibration_batches' .* must be an int >= 1. Got -3"):
        QuantConfig(calibration_batches=-3)


def test_pattern_that_matches_no_layer(cnn_task):
    with pytest.raises(ConfigError) as err:
        apply(cnn_task.model, QuantConfig(keep_float=("classifier.*",)), cnn_task.calibration_data)
    assert "'classifier.*'" in str(err.value)
    assert "block1.0" in str(err.value)  # lists the layers there are


def test_empty_calibration_set(cnn_task):
    with pytest.raises(DataError, match="'calibration_data' data is empty"):
        apply(cnn_task.model, QuantConfig(), [])


def test_calibration_set_smaller_than_calibration_size_uses_what_there_is(cnn_task):
    short = cnn_task.calibration_data[:2]
    quantized = apply(cnn_task.model, QuantConfig(calibration_batches=8), short)
    assert quantized.quantized_layers  # calibrated on the 2 batches there are
    note = calibration_note(short, 8)
    assert "asks for 8 calibration batches and the data has 2" in note
    assert "only 32" not in note  # 2 batches of 16: enough examples, no second warning
    assert calibration_note(cnn_task.calibration_data, 8) is None
    tiny = [(cnn_task.calibration_data[0][0][:3], cnn_task.calibration_data[0][1][:3])]
    assert "observers saw only 3 calibration example(s)" in calibration_note(tiny, 1)


def test_one_shot_iterator_is_refused(cnn_task):
    with pytest.raises(DataError, match="re-iterable"):
        apply(cnn_task.model, QuantConfig(), iter(cnn_task.calibration_data))


def test_model_whose_forward_fails_on_the_data(cnn_task):
    wrong = [(torch.randn(4, 3, 5), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ModelError) as err:
        apply(cnn_task.model, QuantConfig(calibration_batches=1), wrong)
    assert "a tensor of shape (4, 3, 5) (torch.float32)" in str(err.value)
    assert "transform_fn" in str(err.value)


def test_qat_without_training_data(cnn_task):
    with pytest.raises(DataError, match="'train_data'"):
        apply(cnn_task.model, QuantConfig(method="qat_int8"), cnn_task.calibration_data, None)


def test_not_a_model_or_not_a_config(cnn_task):
    with pytest.raises(ConfigError, match="'model' parameter of apply must be a torch.nn.Module"):
        apply("resnet18", QuantConfig(), cnn_task.calibration_data)
    with pytest.raises(ConfigError, match="'config' parameter of apply must be a QuantConfig"):
        apply(cnn_task.model, {"method": "fp32"}, cnn_task.calibration_data)


def test_training_mode_model_is_left_as_it_was(cnn_task):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).train()
    before = checksum(model)
    apply(model, QuantConfig(calibration_batches=2), cnn_task.calibration_data)
    assert model.training and checksum(model) == before
