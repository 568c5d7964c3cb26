import re
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import autoquant
from autoquant import DataError, QuantConfig, apply
from autoquant.errors import ConfigError
from autoquant.measure import (
    Answers,
    FloatReference,
    Scenario,
    Scored,
    count_flips,
    example_batch,
    get_scenario,
    measure,
    measure_latency,
    output_sqnr,
    predict,
    predicted_answers,
    score,
    score_and_answers,
    serialized_size,
)
from autoquant.tasks import digits_task


def test_metrics_against_float(cnn_task):
    quantized = apply(cnn_task.model, QuantConfig(calibration_batches=4), cnn_task.calibration_data)
    metrics = measure(quantized, FloatReference.of(cnn_task, Scenario(batch_size=4, threads=1)))
    float_accuracy = score(cnn_task.model, cnn_task.validation_data, cnn_task.metric)
    assert metrics.float_accuracy == float_accuracy
    assert metrics.drop_points == pytest.approx(100 * (float_accuracy - metrics.accuracy))
    assert metrics.drop_relative == pytest.approx(
        (float_accuracy - metrics.accuracy) / float_accuracy
    )
    assert metrics.speedup == pytest.approx(metrics.float_latency_ms / metrics.latency_ms)
    assert metrics.latency_ms > 0 and metrics.latency_spread_ms >= 0
    # int8 weights: about a quarter of the float bytes
    assert 0.15 < metrics.size_ratio < 0.4
    assert metrics.size_bytes == serialized_size(quantized)
    assert metrics.scenario == "bs4-t1"


def test_flips_count_every_changed_answer_not_only_the_net_loss():
    # dynamic int8 on the zoo's model with activation outliers: it changes a few of float's
    # answers, some right to wrong, some wrong to right, some wrong to another wrong
    task = digits_task("cnn_outliers")
    quantized = apply(task.model, QuantConfig(method="dynamic_int8"), task.calibration_data)
    data = task.validation_data
    metrics = measure(quantized, FloatReference.of(task, Scenario(), data))
    float_outputs, targets = predict(task.model, data)
    outputs, _ = predict(quantized, data)
    changed = outputs.argmax(dim=1) != float_outputs.argmax(dim=1)
    assert metrics.flips == int(changed.sum()) > 0
    # each lost example is a flip, but flips that cancel out do not move the accuracy
    lost = (float_outputs.argmax(dim=1) == targets) & changed
    gained = (outputs.argmax(dim=1) == targets) & changed
    net = int(lost.sum()) - int(gained.sum())
    assert metrics.drop_points == pytest.approx(100 * net / len(targets), abs=1e-4)  # float32
    assert metrics.flips >= int(lost.sum()) + int(gained.sum()) > abs(net)


def test_flips_are_only_counted_for_single_label_classification():
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    labels = torch.tensor([1, 1, 0])
    answers = predicted_answers(scores, labels)
    assert answers.classes.tolist() == [1, 0, 1]
    other = Answers(torch.tensor([1, 1, 1]), labels, scores)
    assert count_flips(other, answers) == 1
    # no single class to agree on: no classes, so no flips (the outputs are kept for SQNR)
    assert predicted_answers(torch.randn(3), torch.randn(3)).classes is None  # regression
    assert predicted_answers(torch.randn(3, 1), torch.randn(3, 1)).classes is None
    sequence = predicted_answers(torch.randn(3, 4, 5), torch.zeros(3, 4, dtype=torch.long))
    assert sequence.classes is None and count_flips(sequence, sequence) is None
    assert predicted_answers(scores, torch.ones(3, 2, dtype=torch.long)).classes is None
    assert count_flips(None, answers) is None


def test_flips_are_not_counted_when_the_data_comes_in_another_order():
    # a shuffled loader gives the examples in a new order each pass: position by position,
    # float's answers would be compared with another example's, so no count is given
    task = digits_task("cnn")
    inputs = torch.cat([x for x, _ in task.validation_data])
    targets = torch.cat([y for _, y in task.validation_data])
    shuffled = DataLoader(TensorDataset(inputs, targets), batch_size=64, shuffle=True)
    ordered = DataLoader(TensorDataset(inputs, targets), batch_size=64)
    quantized = apply(task.model, QuantConfig(method="dynamic_int8"), task.calibration_data)
    torch.manual_seed(0)
    assert measure(quantized, FloatReference.of(task, Scenario(), shuffled)).flips is None
    assert measure(quantized, FloatReference.of(task, Scenario(), ordered)).flips is not None


def test_output_sqnr_is_the_signal_to_noise_ratio_of_the_scores_in_db():
    labels = torch.tensor([1, 0])
    scores = torch.tensor([[3.0, 4.0], [4.0, 3.0]])  # signal: 50
    reference = predicted_answers(scores, labels)
    noisy = predicted_answers(scores + torch.tensor([[0.5, -0.5], [0.0, 0.0]]), labels)  # 0.5
    assert output_sqnr(noisy, reference) == pytest.approx(20.0)  # 10 log10(50 / 0.5)
    assert output_sqnr(reference, reference) == float("inf")
    assert output_sqnr(None, reference) is None
    assert output_sqnr(predicted_answers(scores, labels.flip(0)), reference) is None  # reordered


def test_output_sqnr_ranks_coarser_quantization_lower(cnn_task):
    # the same model with every layer int8, and with three of its four layers kept in float:
    # the second follows float's scores more closely
    data, metric = cnn_task.validation_data, cnn_task.metric
    _, reference = score_and_answers(cnn_task.model, data, metric)
    every = apply(cnn_task.model, QuantConfig(), cnn_task.calibration_data)
    kept = apply(
        cnn_task.model,
        QuantConfig(keep_float=("block1.0", "block2.0", "block3.0")),
        cnn_task.calibration_data,
    )
    sqnr = {
        name: output_sqnr(score_and_answers(model, data, metric)[1], reference)
        for name, model in (("every", every), ("kept", kept))
    }
    assert 10 < sqnr["every"] < sqnr["kept"] < float("inf")
    metrics = measure(every, FloatReference.of(cnn_task, Scenario(), data))
    assert metrics.output_sqnr_db == pytest.approx(sqnr["every"])


def test_float_answers_passed_in_give_the_same_flips():
    task = digits_task("cnn_outliers")
    quantized = apply(task.model, QuantConfig(method="dynamic_int8"), task.calibration_data)
    data = task.validation_data
    accuracy, answers = score_and_answers(task.model, data, task.metric)
    known = FloatReference.of(task, Scenario(), data, accuracy=accuracy, answers=answers)
    measured = FloatReference.of(task, Scenario(), data)
    assert measure(quantized, known).flips == measure(quantized, measured).flips > 0
    assert measured.accuracy == accuracy


def test_score_refuses_a_metric_out_of_range(cnn_task):
    with pytest.raises(DataError, match="score in \\[0, 1\\]"):
        score(cnn_task.model, cnn_task.validation_data, lambda out, y: 97.0)
    with pytest.raises(DataError, match="returned NaN"):
        score(cnn_task.model, cnn_task.validation_data, lambda out, y: float("nan"))
    with pytest.raises(DataError, match="must return a number. Got str"):
        score(cnn_task.model, cnn_task.validation_data, lambda out, y: "high")


def test_model_output_that_does_not_fit_the_metric(cnn_task):
    def needs_2d(outputs, targets):
        return (outputs.argmax(dim=2) == targets).float().mean().item()

    with pytest.raises(DataError, match="'needs_2d' failed on the model's output \\(output shape"):
        score(cnn_task.model, cnn_task.validation_data, needs_2d)


def test_example_batch_has_the_scenario_size(cnn_task):
    assert example_batch(cnn_task.calibration_data, 1).shape == (1, 1, 8, 8)
    # more than the data holds: cycles through it
    assert example_batch(cnn_task.calibration_data[:1], 40).shape == (40, 1, 8, 8)
    with pytest.raises(DataError):
        example_batch([], 4)


def test_latency_of_a_slower_model_is_measured_slower():
    fast = torch.nn.Linear(64, 64)
    slow = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(40)])
    timings = measure_latency({"fast": fast, "slow": slow}, torch.randn(8, 64), threads=1)
    assert timings["slow"].median_ms > 5 * timings["fast"].median_ms


def test_scenarios():
    assert get_scenario("bs64-t2") == Scenario(64, 2)
    with pytest.raises(ConfigError, match="'scenario' parameter must be 'bs\\{N\\}-t\\{M\\}'"):
        get_scenario("bs8")
    with pytest.raises(ConfigError, match="'batch_size' parameter of Scenario"):
        Scenario(batch_size=0)


def test_candidates_measured_together_share_one_float_timing(cnn_task):
    # the final round's way: several candidates, one interleaved run with float once
    reference = FloatReference.of(cnn_task, Scenario())
    dynamic = apply(cnn_task.model, QuantConfig(method="dynamic_int8"), cnn_task.calibration_data)
    static = apply(cnn_task.model, QuantConfig(calibration_batches=2), cnn_task.calibration_data)
    first, second = measure([dynamic, static], reference)
    assert first.float_latency_ms == second.float_latency_ms
    assert first.latency_ms != second.latency_ms
    assert (first.size_bytes, second.size_bytes) == tuple(map(serialized_size, (dynamic, static)))
    # scores given are used as they are, not measured again
    given = Scored(accuracy=0.5, flips=3)
    assert measure(dynamic, reference, scored=given).accuracy == 0.5


def test_the_drop_in_a_budgets_unit_follows_the_metric():
    from autoquant import Budget
    from autoquant.tasks.metrics import get_metric

    top1, mse = get_metric("top1"), get_metric("mse")
    assert Budget(1.0).drop_between(top1, 0.9, 0.88) == pytest.approx(2.0)  # points
    assert Budget(1.0, relative=True).drop_between(top1, 0.9, 0.88) == pytest.approx(2.222, 1e-3)
    assert Budget(1.0).drop_between(mse, 0.2, 0.3) == pytest.approx(0.1)  # lower is better


def test_only_the_measure_package_scores_and_times_candidates():
    # measure() is the one place a candidate is timed against float and its Metrics made
    # (``measure.inspect`` times the float model alone: how much work it is)
    root = Path(autoquant.__file__).parent
    callers = {
        path.relative_to(root).parts[0]
        for path in root.rglob("*.py")
        if re.search(r"\b(measure_latency|make_metrics)\(", path.read_text())
    }
    assert callers == {"measure"}


def test_candidates_are_timed_on_validation_inputs_whatever_data_they_are_scored_on(cnn_task):
    # a model deployed compiled is compiled (and checked against eager) on this example: the
    # final round scores on the test data but compiles on the example every trial compiled on
    on_test = FloatReference.of(cnn_task, Scenario(4, 1), cnn_task.test_data)
    expected = example_batch(cnn_task.validation_data, 4, cnn_task)
    assert torch.equal(on_test.example, expected)
    assert on_test.data is cnn_task.test_data


def test_a_torch_ao_model_keeps_its_engine_when_timed_beside_an_onnx_model(mlp_task, monkeypatch):
    # the ort_* config's backend field is an unused default ('x86'): it must not count as a
    # second engine, which would leave the torch.ao model on whatever engine was set
    pytest.importorskip("onnxruntime")
    import autoquant.measure.latency as latency

    used = []
    original = latency.quantized_engine
    monkeypatch.setattr(latency, "quantized_engine", lambda b: used.append(b) or original(b))
    fbgemm = mlp_task.build(QuantConfig(method="dynamic_int8", backend="fbgemm"))
    in_onnx = mlp_task.build(QuantConfig(method="ort_fp32"))
    x = mlp_task.validation_data[0][0]
    latency.measure_latency({"a": fbgemm, "b": in_onnx}, x, 1, budget_s=0.05, min_rounds=3)
    assert used == ["fbgemm"]


def test_an_onnx_runtime_candidate_is_also_timed_against_float_in_onnx_runtime(
    transformer_task, monkeypatch
):
    pytest.importorskip("onnxruntime")
    import autoquant.measure.compare as compare

    timed = []
    original = compare.measure_latency
    monkeypatch.setattr(
        compare,
        "measure_latency",
        lambda models, *a, **k: timed.append(set(models)) or original(models, *a, **k),
    )
    reference = FloatReference.of(transformer_task, Scenario(batch_size=1, threads=1))
    in_onnx = transformer_task.build(QuantConfig(method="ort_dynamic_int8"))
    in_torch = transformer_task.build(QuantConfig(method="dynamic_int8"))
    both = measure([in_onnx, in_torch], reference, timing=compare.QUICK_TIMING)
    # one interleaved run: eager float, the ONNX float model, both candidates
    assert timed == [{"float", "onnx float", "0", "1"}]
    assert both[0].speedup_vs_onnx_float > 0
    assert both[1].speedup_vs_onnx_float is None  # torch's kernels: eager float is the baseline
    # the float model is exported once per reference and the run's figures agree
    exported = reference.onnx
    assert measure(in_onnx, reference, timing=compare.QUICK_TIMING).speedup_vs_onnx_float > 0
    assert reference.onnx is exported
    assert reference.__getstate__()["onnx"] is None  # a session does not cross processes
