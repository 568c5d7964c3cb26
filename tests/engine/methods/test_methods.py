"""Every method on every backend the capability table allows, on real digits models."""

import gc
import warnings

import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
from torch import nn

from autoquant import QuantConfig, UnsupportedError, apply, capabilities
from autoquant.measure import score
from tests.conftest import checksum

# The torch.ao engine's methods; the torchao ones are tested in test_torchao.py.
TORCH_AO = [r for r in capabilities() if r["engine"] == "torch.ao"]
SUPPORTED = [(r["method"], r["backend"]) for r in TORCH_AO if r["supported"]]
UNSUPPORTED = [(r["method"], r["backend"]) for r in TORCH_AO if not r["supported"]]


def config_for(method: str, backend: str, **fields) -> QuantConfig:
    # onednn takes symmetric weights only; the other backends run the affine default.
    fields.setdefault("qscheme", "symmetric" if backend == "onednn" else "affine")
    fields.setdefault("reduce_range", backend in ("x86", "fbgemm"))
    return QuantConfig(method=method, backend=backend, calibration_batches=4, **fields)


def task_for(method, cnn_task, mlp_task):
    return cnn_task if method in ("static_int8", "qat_int8", "fp32") else mlp_task


def quantized_modules(model):
    """Module name -> type for the modules of ``model`` that are torch.ao quantized layers."""
    packages = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")
    return {
        name: type(m)
        for name, m in model.named_modules()
        if type(m).__module__.startswith(packages) and not name.endswith("_packed_params")
    }


@pytest.mark.parametrize(("method", "backend"), SUPPORTED)
def test_method_quantizes_and_keeps_accuracy(method, backend, cnn_task, mlp_task):
    task = task_for(method, cnn_task, mlp_task)
    before = checksum(task.model)
    quantized = apply(
        task.model, config_for(method, backend), task.calibration_data, task.train_data
    )

    assert checksum(task.model) == before, "the user's model must not change"
    assert not task.model.training
    modules = quantized_modules(quantized.module)
    if method == "fp32":
        assert modules == {}
        assert quantized.quantized_layers == []
    elif method in ("static_int8", "qat_int8"):
        assert modules["block1.0"] is nniq.ConvReLU2d  # conv + batch norm + ReLU fused, int8
        assert modules["fc"] is nnq.Linear
        assert set(quantized.quantized_layers) == {"block1.0", "block2.0", "block3.0", "fc"}
    else:
        assert set(modules) == {"fc1", "fc2", "fc3"}
        assert all(t is nnqd.Linear for t in modules.values())
        dtype = "float16" if method == "dynamic_fp16" else "qint8"
        assert {e["weight_dtype"] for e in quantized.layer_map.values()} == {dtype}

    float_accuracy = score(task.model, task.validation_data, task.metric)
    accuracy = score(quantized, task.validation_data, task.metric)
    assert accuracy >= float_accuracy - 0.03


@pytest.mark.parametrize(("method", "backend"), SUPPORTED)
def test_config_json_round_trip_rebuilds_identical_model(method, backend, cnn_task, mlp_task):
    task = task_for(method, cnn_task, mlp_task)
    config = config_for(method, backend)
    first = apply(task.model, config, task.calibration_data, task.train_data)
    again = apply(
        task.model, QuantConfig.from_json(config.to_json()), task.calibration_data, task.train_data
    )
    x = task.validation_data[0][0]
    with torch.no_grad():
        assert torch.equal(first(x), again(x))


@pytest.mark.parametrize("method", ["static_int8", "qat_int8"])
def test_layers_kept_in_float_stay_float_static(method, cnn_task):
    config = config_for(method, "x86", keep_float=("fc", "block1.*"))
    quantized = apply(cnn_task.model, config, cnn_task.calibration_data, cnn_task.train_data)
    assert type(quantized.module.get_submodule("fc")) is nn.Linear
    kept_conv = quantized.module.get_submodule("block1.0")  # float, possibly fused with its ReLU
    assert "quantized" not in type(kept_conv).__module__
    assert type(kept_conv[0] if isinstance(kept_conv, nn.Sequential) else kept_conv) is nn.Conv2d
    assert type(quantized.module.get_submodule("block2.0")) is nniq.ConvReLU2d
    assert set(quantized.float_layers) == {"fc", "block1.0"}
    assert quantized.layer_map["fc"]["mode"] == "float"


@pytest.mark.parametrize("method", ["static_int8", "qat_int8"])
def test_what_runs_between_float_layers_stays_float(method, cnn_task):
    # block2 -> pool -> block3: with both convs in float, the batch norm, ReLU and pooling
    # between them must not round the float output to int8.
    config = config_for(method, "x86", keep_float=("block2.0", "block3.0"))
    quantized = apply(cnn_task.model, config, cnn_task.calibration_data, cnn_task.train_data)
    code = quantized.module.code
    assert "quantize_per_tensor(block2_0" not in code
    assert "quantize_per_tensor(block3_0" not in code
    assert "quantize_per_tensor(x" in code  # the rest is still quantized
    for name in ("block2", "pool", "block3"):
        for module in quantized.module.get_submodule(name).modules():
            assert "quantized" not in type(module).__module__, (name, type(module))
    assert type(quantized.module.get_submodule("block1.0")) is nniq.ConvReLU2d


@pytest.mark.parametrize("method", ["dynamic_int8", "dynamic_fp16"])
def test_layers_kept_in_float_stay_float_dynamic(method, mlp_task):
    config = config_for(method, "x86", keep_float=("fc3",))
    quantized = apply(mlp_task.model, config, mlp_task.calibration_data)
    assert type(quantized.module.fc3) is nn.Linear
    assert type(quantized.module.fc1) is nnqd.Linear
    assert quantized.float_layers == ["fc3"]


def test_dynamic_int8_quantizes_lstm(lstm_task):
    quantized = apply(
        lstm_task.model, config_for("dynamic_int8", "x86"), lstm_task.calibration_data
    )
    assert type(quantized.module.lstm) is nnqd.LSTM
    assert quantized.layer_map["lstm"] == {
        "type": "LSTM",
        "quantized": True,
        "mode": "dynamic",
        "weight_dtype": "qint8",
        "module": "LSTM",
    }
    drop = score(lstm_task.model, lstm_task.validation_data, lstm_task.metric) - score(
        quantized, lstm_task.validation_data, lstm_task.metric
    )
    assert drop < 0.03


def test_static_falls_back_to_eager_for_untraceable_model(cnn_task):
    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = x.flatten(1)
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                x = torch.relu(self.fc1(x))
            return self.fc2(x)

    model = Untraceable().eval()
    quantized = apply(model, config_for("static_int8", "x86"), cnn_task.calibration_data)
    assert type(quantized.module.fc1.module) is nnq.Linear  # wrapped between its own stubs
    assert quantized.quantized_layers == ["fc1", "fc2"]
    x = cnn_task.validation_data[0][0]
    with torch.no_grad():
        assert (quantized(x) - model(x)).abs().max() < 0.5


def test_qat_refuses_untraceable_model(cnn_task):
    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1)) if x.sum() > 0 else self.fc(-x.flatten(1))

    with pytest.raises(UnsupportedError, match="qat_int8 needs a model torch.fx can trace"):
        apply(
            Untraceable(),
            config_for("qat_int8", "x86"),
            cnn_task.calibration_data,
            cnn_task.train_data,
        )


@pytest.mark.parametrize(("method", "backend"), UNSUPPORTED)
def test_unsupported_combination_raises_before_any_work(method, backend, mlp_task):
    with pytest.raises(UnsupportedError) as err:
        # no data at all: the table must answer before the data is even looked at
        apply(mlp_task.model, QuantConfig(method=method, backend=backend), calibration_data=None)
    assert method in str(err.value) and repr(backend) in str(err.value)
    assert "linear_prepack_fp16" in str(err.value)


def test_onednn_with_affine_weights_is_refused_up_front(cnn_task):
    with pytest.raises(UnsupportedError, match="qscheme='symmetric'"):
        apply(cnn_task.model, QuantConfig(backend="onednn", qscheme="affine"), None)


def live_modules() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on torch.distributed's deprecated aliases warns
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for o in gc.get_objects() if isinstance(o, nn.Module))


@pytest.mark.parametrize("method", ["static_int8", "qat_int8"])
def test_building_a_model_leaves_nothing_behind(method, cnn_task):
    # torch.ao's FX passes cache every model they see (an unbounded functools.cache): a study
    # that built hundreds of models held them all (0.5 GB a mobilenet_v2 study).
    config = config_for(method, "x86")
    apply(cnn_task.model, config, cnn_task.calibration_data, cnn_task.train_data)
    before = live_modules()
    quantized = apply(cnn_task.model, config, cnn_task.calibration_data, cnn_task.train_data)
    del quantized
    assert live_modules() == before, "building a model left modules behind"


def test_what_a_method_needs_is_read_from_its_registration(cnn_task, monkeypatch):
    # a method a user registers says what the model must offer; inspect reads it from there
    import autoquant.engine.methods as registry
    from autoquant import inspect, register_method
    from autoquant.engine.methods.base import Method

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_method
    class NeedsExport(Method):
        name = "needs_export"
        summary = "a method that needs torch.export"
        requires = "export"

        def quantize(self, model, config, **inputs):
            return model

    example = cnn_task.validation_data[0][0][:1]
    assert "needs_export" in inspect(cnn_task.model, example).methods  # the CNN exports

    class Unexportable(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.linear(x, torch.ones(2, x.shape[1])) if x.sum() > 0 else x

    report = inspect(torch.nn.Sequential(torch.nn.Linear(4, 4), Unexportable()), torch.ones(1, 4))
    assert "torch.export" in report.unavailable["needs_export"]
    assert "needs_export" not in report.methods
