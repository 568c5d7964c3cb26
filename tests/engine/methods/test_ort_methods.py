"""The ONNX Runtime methods on real digits models: int8 in the session, the layers chosen,
and the space without onnxruntime installed."""

import sys

import pytest
import torch

from autoquant import QuantConfig, UnsupportedError, search
from autoquant.engine.ort import OrtModule, missing_reason, output_difference
from autoquant.measure import score_and_answers, serialized_size
from autoquant.measure.inspect import inspect

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def inputs_of(task, batches=2):
    return torch.cat([x for x, _ in task.validation_data[:batches]])


@pytest.mark.parametrize(
    ("name", "method", "observer"),
    [
        ("transformer_task", "ort_dynamic_int8", "minmax"),
        ("mlp_task", "ort_dynamic_int8", "minmax"),  # Linear on 2-D inputs: Gemm nodes
        ("cnn_task", "ort_static_int8", "histogram"),
        ("cnn_task", "ort_static_int8", "percentile"),
        ("mlp_task", "ort_static_int8", "minmax"),
        ("cnn_task", "ort_fp16", "minmax"),
    ],
)
def test_int8_and_fp16_in_onnx_runtime_convert_the_chosen_layers_and_keep_accuracy(
    name, method, observer, request
):
    task = request.getfixturevalue(name)
    config = QuantConfig(method=method, activation_observer=observer, calibration_batches=4)
    quantized = task.build(config)
    assert isinstance(quantized.module, OrtModule)
    assert quantized.quantized_layers == list(quantized.layer_map)  # every layer
    x = inputs_of(task)
    difference = output_difference(task.model, quantized, x)
    assert 0 < difference  # int8 (float16) kernels ran: the outputs moved
    float_score, _ = score_and_answers(task.model, task.validation_data, task)
    score, _ = score_and_answers(quantized, task.validation_data, task)
    assert score > float_score - 0.03
    # the ONNX model with int8 (float16) weights is smaller than the float one
    assert serialized_size(quantized) < 0.6 * serialized_size(task.model)


def int8_types(model) -> dict[str, set[str]]:
    """The element types in ``model``'s ONNX graph of its activations' zero points (static) and
    of its quantized weights (static and dynamic)."""
    graph = onnx.load_from_string(model.module.onnx_bytes).graph
    stored = {i.name: onnx.TensorProto.DataType.Name(i.data_type) for i in graph.initializer}
    found = {"activations": set(), "weights": set()}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in stored:
            found["activations"].add(stored[node.input[2]])
        # (a bias is stored in int32 whatever the types: it is left out)
        if node.op_type == "DequantizeLinear" and stored.get(node.input[0], "INT32") != "INT32":
            found["weights"].add(stored[node.input[0]])
        if node.op_type == "MatMulInteger" and node.input[1] in stored:
            found["weights"].add(stored[node.input[1]])
    return found


@pytest.mark.parametrize(
    ("method", "activation_dtype", "weight_dtype", "expected"),
    [
        ("ort_static_int8", "quint8", "qint8", {"activations": {"UINT8"}, "weights": {"INT8"}}),
        ("ort_static_int8", "qint8", "qint8", {"activations": {"INT8"}, "weights": {"INT8"}}),
        ("ort_static_int8", "quint8", "quint8", {"activations": {"UINT8"}, "weights": {"UINT8"}}),
        ("ort_dynamic_int8", "quint8", "quint8", {"activations": set(), "weights": {"UINT8"}}),
    ],
)
def test_the_int8_types_in_the_graph_are_the_ones_asked_for(
    method, activation_dtype, weight_dtype, expected, transformer_task
):
    config = QuantConfig(
        method=method,
        activation_observer="minmax",
        activation_dtype=activation_dtype,
        weight_dtype=weight_dtype,
        calibration_batches=2,
    )
    quantized = transformer_task.build(config)
    assert int8_types(quantized) == expected
    float_score, _ = score_and_answers(
        transformer_task.model, transformer_task.test_data, transformer_task
    )
    score, _ = score_and_answers(quantized, transformer_task.test_data, transformer_task)
    assert score > float_score - 0.03


def test_layers_kept_in_float_stay_float_in_the_onnx_graph(transformer_task):
    config = QuantConfig(method="ort_dynamic_int8", keep_float=("encoder.0.*", "fc"))
    quantized = transformer_task.build(config)
    kept = [n for n in quantized.layer_map if n.startswith("encoder.0.") or n == "fc"]
    assert len(kept) == 7 and set(kept) == set(quantized.float_layers)
    assert len(quantized.quantized_layers) == 14 - 7
    every = transformer_task.build(QuantConfig(method="ort_dynamic_int8"))

    def int8_products(model):
        graph = onnx.load_from_string(model.module.onnx_bytes).graph
        return sum(node.op_type == "MatMulInteger" for node in graph.node)

    # the graph ONNX Runtime runs holds exactly the chosen layers in int8
    assert (int8_products(quantized), int8_products(every)) == (7, 14)
    assert serialized_size(quantized) > serialized_size(every)


def test_without_onnxruntime_the_methods_are_left_out_with_what_to_install(mlp_task, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert "pip install 'autoquant[onnx]'" in missing_reason()
    report = inspect(mlp_task.model, inputs_of(mlp_task, 1)[:1])
    for method in ("ort_fp32", "ort_fp16", "ort_dynamic_int8", "ort_static_int8"):
        assert "autoquant[onnx]" in report.unavailable[method]
    assert "dynamic_int8" in report.methods  # nothing else changes
    with pytest.raises(UnsupportedError, match=r"autoquant\[onnx\]"):
        mlp_task.build(QuantConfig(method="ort_fp32"))
    # the onnx space still searches what is left (eager float), saying what was left out
    rec = search(mlp_task, "1pt", "onnx", n_trials=2, progress=False, log=lambda _: None)
    left_out = [n for n in rec.notes if n.startswith("ort_") and "autoquant[onnx]" in n]
    assert len(left_out) == 4 and {r.config.method for r in rec.records} == {"fp32"}


def test_a_search_exports_the_float_model_once_and_again_when_a_weight_changes(
    mlp_task, monkeypatch
):
    import copy

    from autoquant import apply
    from autoquant.engine.methods import _ort

    exports = []
    real_export = _ort.export_onnx

    def counted_export(*args, **kwargs):
        exports.append(1)
        return real_export(*args, **kwargs)

    monkeypatch.setattr(_ort, "export_onnx", counted_export)
    monkeypatch.setattr(_ort, "_LAST_EXPORT", [])
    x = inputs_of(mlp_task)
    dynamic = mlp_task.build(QuantConfig(method="ort_dynamic_int8"))
    static = mlp_task.build(QuantConfig(method="ort_static_int8"))
    assert len(exports) == 1  # the second trial reused the first one's export
    monkeypatch.setattr(_ort, "_LAST_EXPORT", [])
    fresh = mlp_task.build(QuantConfig(method="ort_static_int8"))
    assert len(exports) == 2
    # the reused export quantizes to the very graph a fresh one does
    assert static.module.onnx_bytes == fresh.module.onnx_bytes
    changed = copy.deepcopy(mlp_task.model)
    with torch.no_grad():
        next(changed.parameters()).add_(0.5)
    moved = apply(changed, QuantConfig(method="ort_dynamic_int8"), mlp_task.calibration_data)
    assert len(exports) == 3  # new weights, new export
    assert not torch.allclose(moved(x), dynamic(x))
    flagged = copy.deepcopy(mlp_task.model)
    flagged.scale_inputs = True  # a setting forward could read: same weights, new export
    apply(flagged, QuantConfig(method="ort_dynamic_int8"), mlp_task.calibration_data)
    assert len(exports) == 4
