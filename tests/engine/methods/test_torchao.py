"""The torchao engine's methods on real digits models: int8 ops present, accuracy kept,
layers kept in float honoured, compiled timing against compiled float, .pt2 round trips."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchao  # noqa: F401 - a dependency: without it these tests fail at import, never skip
from torch import nn

from autoquant import QuantConfig, UnsupportedError, apply, capabilities
from autoquant.engine.export import EXPORTED_FILE, load, save
from autoquant.measure import FloatReference, Scenario, measure, score
from tests.models import ResidualCNN, UnusedPoolerMLP

PT2E = [
    QuantConfig("pt2e_static_int8", "x86", calibration_batches=4),
    QuantConfig("pt2e_static_int8", "qnnpack", reduce_range=False, calibration_batches=4),
]
QUANTIZE_ = {
    "torchao_dynamic_int8": ("dynamic", "int8", "Int8Tensor"),
    "torchao_weight_only_int8": ("weight_only", "int8", "Int8Tensor"),
    "torchao_int4_weight_only": ("weight_only", "int4", "IntxUnpackedToInt8Tensor"),
}
CNN_LAYERS = {"block1.0", "block2.0", "block3.0", "fc"}


def weight_reads(graph_module: torch.fx.GraphModule) -> dict[str, str]:
    """Module name -> the operator its conv/linear weight comes from, in a converted graph."""
    reads = {}
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and str(node.target) in (
            "aten.conv2d.default",
            "aten.linear.default",
        ):
            owner = list(node.meta["nn_module_stack"].values())[-1][0]
            weight = node.args[1]
            reads[owner] = str(weight.target) if weight.op == "call_function" else weight.op
    return reads


def test_capability_table_shows_the_torchao_engine():
    rows = {(r["method"], r["backend"]): r for r in capabilities()}
    for method in ["pt2e_static_int8", *QUANTIZE_]:
        assert rows[(method, "x86")]["engine"] == "torchao"
        assert rows[(method, "x86")]["supported"]
    assert rows[("static_int8", "x86")]["engine"] == "torch.ao"
    assert not rows[("pt2e_static_int8", "fbgemm")]["supported"]
    assert "no quantizer" in rows[("pt2e_static_int8", "onednn")]["note"]


def test_pt2e_refuses_an_engine_without_quantizer_before_any_work(cnn_task):
    with pytest.raises(UnsupportedError, match="pt2e_static_int8 cannot run on the 'fbgemm'"):
        apply(cnn_task.model, QuantConfig("pt2e_static_int8", "fbgemm"), calibration_data=None)


@pytest.mark.parametrize("config", PT2E, ids=lambda c: c.backend)
def test_pt2e_quantizes_every_layer_and_keeps_accuracy(config, cnn_task):
    quantized = apply(cnn_task.model, config, cnn_task.calibration_data)

    reads = weight_reads(quantized.module)
    assert reads == {
        name: "quantized_decomposed.dequantize_per_channel.default" for name in CNN_LAYERS
    }
    ops = {str(n.target) for n in quantized.module.graph.nodes}
    assert "quantized_decomposed.quantize_per_tensor.default" in ops  # activations too
    assert set(quantized.quantized_layers) == CNN_LAYERS
    assert quantized.layer_map["fc"]["weight_dtype"] == "qint8"
    # The float weights are gone: only their int8 copies are held (and counted in the size).
    assert all(
        t.dtype != torch.float32 or t.dim() <= 1 for t in quantized.module.state_dict().values()
    )

    assert quantized.needs_compile == (config.backend == "x86")
    if quantized.needs_compile:
        quantized.compile(cnn_task.validation_data[0][0])  # scored as deployed
    float_accuracy = score(cnn_task.model, cnn_task.validation_data, cnn_task.metric)
    assert score(quantized, cnn_task.validation_data, cnn_task.metric) >= float_accuracy - 0.03


@pytest.mark.parametrize("config", PT2E, ids=lambda c: c.backend)
def test_pt2e_leaves_kept_layers_float(config, cnn_task):
    config = QuantConfig(**{**config.to_dict(), "keep_float": ["fc", "block1.*"]})
    quantized = apply(cnn_task.model, config, cnn_task.calibration_data)

    reads = weight_reads(quantized.module)
    assert reads["fc"] == reads["block1.0"] == "get_attr"  # the float weight, read directly
    assert reads["block2.0"] == "quantized_decomposed.dequantize_per_channel.default"
    assert set(quantized.float_layers) == {"fc", "block1.0"}


@pytest.mark.parametrize("method", list(QUANTIZE_))
def test_quantize_methods_swap_linear_weights_and_keep_accuracy(method, mlp_task):
    mode, dtype, tensor_type = QUANTIZE_[method]
    quantized = apply(mlp_task.model, QuantConfig(method), mlp_task.calibration_data)

    for name in ("fc1", "fc2", "fc3"):
        assert type(quantized.module.get_submodule(name).weight).__name__ == tensor_type
        assert quantized.layer_map[name]["mode"] == mode
        assert quantized.layer_map[name]["weight_dtype"] == dtype
    assert type(mlp_task.model.fc1.weight) is nn.Parameter, "the user's model must not change"

    try:
        quantized.compile(mlp_task.validation_data[0][0])
    except RuntimeError as err:
        # Measured on an AVX2 CPU (AMD EPYC): torchao's x86 Inductor lowering of dynamic int8
        # departs from eager. autoquant must refuse such a model, never deploy it.
        assert method == "torchao_dynamic_int8" and "changed what MLP computes" in str(err)
        assert quantized.compiled is None
    float_accuracy = score(mlp_task.model, mlp_task.validation_data, mlp_task.metric)
    assert score(quantized, mlp_task.validation_data, mlp_task.metric) >= float_accuracy - 0.03


@pytest.mark.parametrize("method", list(QUANTIZE_))
def test_quantize_methods_leave_kept_layers_float(method, mlp_task):
    config = QuantConfig(method, keep_float=("fc3",))
    quantized = apply(mlp_task.model, config, mlp_task.calibration_data)
    assert type(quantized.module.fc3.weight) is nn.Parameter
    assert type(quantized.module.fc1.weight).__name__ == QUANTIZE_[method][2]
    assert quantized.float_layers == ["fc3"]


def test_compiled_candidate_is_timed_against_eager_and_compiled_float(mlp_task):
    quantized = apply(
        mlp_task.model, QuantConfig("torchao_weight_only_int8"), mlp_task.calibration_data
    )
    reference = FloatReference.of(mlp_task, Scenario())
    metrics = measure(quantized, reference)
    # the scenario's baseline (eager float) decides the speedup; compiled float is reported too
    assert metrics.reference == "float"
    assert metrics.speedup == pytest.approx(metrics.speedup_vs_eager)
    assert metrics.speedup_vs_compiled > 0
    assert metrics.compile_seconds > 0
    assert quantized.compiled is not None
    eager = apply(mlp_task.model, QuantConfig("dynamic_int8"), mlp_task.calibration_data)
    metrics = measure(eager, reference)
    assert (metrics.reference, metrics.compile_seconds) == ("float", 0.0)
    assert metrics.speedup_vs_compiled is None  # no compile involved: one figure


LOAD_AND_RUN = textwrap.dedent(
    """
    import sys, torch
    import autoquant
    model = autoquant.load(sys.argv[1], compile=False)
    x = torch.load(sys.argv[2])
    with torch.no_grad():
        torch.save(model(x), sys.argv[3])
    """
)


def outputs_in_fresh_process(folder, x, tmp_path) -> torch.Tensor:
    torch.save(x, tmp_path / "x.pt")
    subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_RUN,
            str(folder),
            str(tmp_path / "x.pt"),
            str(tmp_path / "y.pt"),
        ],
        check=True,
        timeout=300,
    )
    return torch.load(tmp_path / "y.pt")


@pytest.mark.parametrize(
    ("task_name", "config"),
    [
        ("cnn", QuantConfig("pt2e_static_int8", "x86", keep_float=("fc",), calibration_batches=4)),
        ("mlp", QuantConfig("torchao_dynamic_int8")),
        ("mlp", QuantConfig("torchao_weight_only_int8")),
        ("mlp", QuantConfig("torchao_int4_weight_only")),
    ],
    ids=["pt2e", "dynamic", "weight_only", "int4"],
)
def test_pt2_export_round_trips_in_a_fresh_process(task_name, config, request, tmp_path):
    task = request.getfixturevalue(f"{task_name}_task")
    quantized = apply(task.model, config, task.calibration_data)
    x = task.validation_data[0][0][:5]  # another batch size than the export example's
    paths = save(quantized, tmp_path / "saved", task.validation_data[0][0][:1])
    assert paths["model"].name == EXPORTED_FILE

    loaded = outputs_in_fresh_process(tmp_path / "saved", x, tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded, quantized.module(x))
        assert torch.equal(load(tmp_path / "saved", compile=False)(x), loaded)
        # by default the model is compiled again, as it was measured
        compiled = load(tmp_path / "saved")
        torch.testing.assert_close(compiled(x), loaded, rtol=0.05, atol=0.05)
    assert isinstance(compiled.scripted, torch._dynamo.eval_frame.OptimizedModule)
    assert "torch.compile" in paths["compile_note"].read_text()


def test_mlflow_logs_the_torchao_model_in_pt2_format(mlp_task, tmp_path):
    import mlflow

    from autoquant.tracking.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri)
    quantized = apply(
        mlp_task.model, QuantConfig("torchao_weight_only_int8"), mlp_task.calibration_data
    )
    mlflow.set_tracking_uri(uri)
    run_id = mlflow.MlflowClient().create_run(mlflow.create_experiment("pt2")).info.run_id
    x = mlp_task.validation_data[0][0][:3]
    model_uri = tracker._log_exported(run_id, quantized.module, x[:1])

    local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp_path / "dl")))
    assert (local / "data" / "model.pt2").is_file()  # the pt2 format, not a pickle
    script = textwrap.dedent(
        f"""
        import sys, torch, mlflow, mlflow.pytorch, torchao
        mlflow.set_tracking_uri({uri!r})
        model = mlflow.pytorch.load_model({model_uri!r})
        with torch.no_grad():
            torch.save(model(torch.load(sys.argv[1])), sys.argv[2])
        """
    )
    torch.save(x, tmp_path / "x.pt")
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "x.pt"), str(tmp_path / "y.pt")],
        check=True,
        timeout=300,
    )
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "y.pt"), quantized.module(x))


def test_compile_refuses_a_compiled_model_that_computes_something_else():
    from autoquant.engine.compile import compile_module

    class DependsOnCompiling(nn.Module):
        def forward(self, x):
            return x * 3 if torch.compiler.is_compiling() else x

    with pytest.raises(RuntimeError, match="torch.compile changed what DependsOnCompiling"):
        compile_module(DependsOnCompiling(), torch.ones(2, 4))


def test_compiling_leaves_the_eager_module_untouched(transformer_task):
    # Measured: compiling PT2E's Transformer on one example mutated its position buffer.
    config = QuantConfig("pt2e_static_int8", "x86", calibration_batches=4)
    quantized = apply(transformer_task.model, config, transformer_task.calibration_data)
    before = {k: v.clone() for k, v in quantized.module.state_dict().items()}
    try:
        quantized.compile(transformer_task.validation_data[0][0][:1])
    except RuntimeError as err:  # the compiled graph departed from eager: refused, see compile.py
        assert "torch.compile changed what" in str(err)
    after = quantized.module.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_pt2e_quantizes_a_residual_block_whose_relu_is_called_twice(cnn_task):
    # Non-strict torch.export made the two calls of one ReLU a single pattern with two outputs,
    # and X86InductorQuantizer failed ("Input partition has more than one output node") on
    # torchvision's resnet18; PT2E exports strictly so each call is its own pattern.
    model = ResidualCNN()
    quantized = apply(model, PT2E[0], cnn_task.calibration_data)
    reads = weight_reads(quantized.module)
    assert set(reads.values()) == {"quantized_decomposed.dequantize_per_channel.default"}
    assert set(quantized.quantized_layers) == {"conv1", "conv2", "conv3", "fc"}
    x = cnn_task.validation_data[0][0]
    with torch.no_grad():
        torch.testing.assert_close(quantized(x), model(x), atol=0.1, rtol=0.1)


def test_pt2e_quantizes_a_model_with_an_unused_branch(mlp_task):
    # Without removing the dead pooler from the exported graph, X86InductorQuantizer fails
    # with IndexError on its Linear-Tanh pattern (seen on a BERT encoder).
    model = UnusedPoolerMLP()
    config = QuantConfig(method="pt2e_static_int8", calibration_batches=2)
    quantized = apply(model, config, mlp_task.calibration_data)
    assert quantized.layer_map["mlp.fc1"]["quantized"]
    assert score(quantized, mlp_task.validation_data, "top1") >= (
        score(model, mlp_task.validation_data, "top1") - 0.03
    )
