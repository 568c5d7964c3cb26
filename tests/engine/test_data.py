"""Batches and outputs of any structure, through every path: calibration, scoring, timing,
sensitivity, export and a whole search, on the trained digits MLP behind other signatures."""

import json

import pytest
import torch

from autoquant import DataError, QuantConfig, Task, search
from autoquant.engine.data import (
    Adapter,
    calibration_note,
    call,
    concat,
    first_examples,
    pick_output,
)
from autoquant.engine.export import load, save
from autoquant.measure import (
    FloatReference,
    Scenario,
    example_batch,
    measure,
    score,
    score_and_answers,
)
from autoquant.study.sensitivity import measure_sensitivity
from autoquant.study.space import parse_space
from autoquant.tasks.digits import digits_splits
from autoquant.tasks.zoo import load_zoo_model
from tests.models import ClassifierOutput, DictOutputMLP, KeywordMLP, TwoInputMLP
from tests.own_task import digits_batches

SMALL = parse_space(
    "methods: [fp32, dynamic_int8, static_int8]\nbackends: [x86]\n"
    "activation_observers: [minmax]\ncalibration_batches: [2]\n",
    name="small",
)


def _task(structure: str, model: torch.nn.Module, **kwargs) -> Task:
    return Task(
        name=f"digits-{structure}",
        model=model,
        calibration_data=digits_batches("calibration", 16, structure),
        validation_data=digits_batches("validation", 64, structure),
        test_data=digits_batches("test", 64, structure),
        **kwargs,
    )


STRUCTURES = {
    "dict": KeywordMLP,  # dict batch -> keyword arguments; returns a ModelOutput-like dataclass
    "tuple": TwoInputMLP,  # positional arguments; returns a tuple (logits, features)
    "tensor": DictOutputMLP,  # a bare tensor, no targets; returns a dict with "logits"
}


@pytest.fixture(scope="module")
def mlp_accuracy() -> float:
    mlp = load_zoo_model("mlp", log=lambda _: None)
    return score(mlp, digits_splits()["validation"].batches(64), "top1")


def test_the_adapter_reads_each_structure():
    x, y = torch.ones(4, 3), torch.arange(4)
    adapter = Adapter()
    assert adapter.inputs((x, y)) is x and adapter.targets((x, y)) is y
    assert adapter.inputs(x) is x and adapter.targets(x) is None
    batch = {"input_ids": x, "attention_mask": x, "labels": y}
    assert set(adapter.inputs(batch)) == {"input_ids", "attention_mask"}
    assert adapter.targets(batch) is y
    three = (x, x, x)  # not a pair: three positional inputs, no targets
    assert adapter.inputs(three) is three and adapter.targets(three) is None
    assert Adapter(transform_fn=lambda b: b[0] * 2).targets((x, y)) is y  # still a pair
    two_inputs = Adapter(transform_fn=tuple, target_fn=lambda b: None)  # no targets, 2 inputs
    assert two_inputs.inputs([x, x]) == (x, x) and two_inputs.targets([x, x]) is None
    hooked = Adapter(transform_fn=lambda b: b["x"], target_fn=lambda b: b["y"])
    assert hooked.inputs({"x": x, "y": y}) is x and hooked.targets({"x": x, "y": y}) is y


def test_the_tensor_to_score_is_found_in_any_output():
    logits = torch.randn(2, 10)
    assert pick_output(logits) is logits
    assert pick_output((logits, torch.zeros(2))) is logits
    assert pick_output({"loss": None, "logits": logits}) is logits
    encoder = {"last_hidden_state": logits, "pooler_output": torch.zeros(2, 3)}
    assert pick_output(encoder) is logits  # an encoder's first output, not its pooler's
    assert pick_output(ClassifierOutput(logits=logits)) is logits
    with pytest.raises(DataError, match="give the task an output_fn"):
        pick_output("text")
    with pytest.raises(DataError, match="output_fn must return a tensor. Got a str"):
        Adapter(output_fn=lambda out: "x").output(logits)


def test_example_batches_are_built_from_the_users_inputs():
    batches = digits_batches("validation", 16, "dict")
    example = example_batch(batches, 40, Task("t", KeywordMLP(), batches, batches))
    assert set(example) == {"pixels", "scale"}  # labels are not model inputs
    assert example["pixels"].shape == (40, 1, 8, 8) and example["scale"].shape == (40,)
    assert first_examples(example)["pixels"].shape == (1, 1, 8, 8)
    joined = concat([((x, x), None) for x in (torch.ones(2, 3), torch.zeros(1, 3))])
    assert joined[0][0].shape == (3, 3)
    # batches of another sequence length are skipped, not joined into a ragged batch
    ragged = [torch.ones(4, 7), torch.ones(4, 9), torch.ones(4, 7)]
    assert example_batch(ragged, 8).shape == (8, 7)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_every_path_takes_the_structure(structure, mlp_accuracy, tmp_path):
    task = _task(structure, STRUCTURES[structure]())
    labelled = structure != "tensor"
    assert task.metric.name == ("top1" if labelled else "cosine")  # label-free by default
    float_score, answers = score_and_answers(task.model, task.validation_data, task)
    assert float_score == pytest.approx(mlp_accuracy if labelled else 1.0)
    for config in [
        QuantConfig(method="dynamic_int8"),
        QuantConfig(method="static_int8", calibration_batches=2),
    ]:
        quantized = task.build(config)
        assert quantized.quantized_layers
        metrics = measure(quantized, FloatReference.of(task, Scenario(8, 1)))
        assert 0 <= metrics.drop_points < 5  # a real int8 MLP, not a broken one
        assert metrics.speedup > 0 and metrics.output_sqnr_db > 10
        assert (metrics.flips is not None) == labelled  # flips need classes to compare
    sensitivity = measure_sensitivity(task, QuantConfig(calibration_batches=2))
    assert [s.name for s in sensitivity] and all(s.sqnr_db > 10 for s in sensitivity)
    example = example_batch(task.validation_data, 2, task)
    paths = save(quantized, tmp_path, example)
    info = json.loads(paths["config"].read_text())
    rebuilt = task.build(QuantConfig.from_dict(info["config"]))  # the documented way back
    expected = task.adapter.output(call(quantized, example))
    torch.testing.assert_close(task.adapter.output(call(rebuilt, example)), expected)
    if structure == "tuple":  # a tuple of tensors: TorchScript holds it
        torch.testing.assert_close(task.adapter.output(call(load(tmp_path), example)), expected)
    else:  # TorchScript cannot hold a dataclass, nor a dict with a None: the weights are saved
        assert "model" not in paths and paths["state_dict"].is_file()
        assert "Rebuild the model with autoquant.apply" in info["model_file_error"]


def test_a_search_on_dict_batches_and_model_outputs(tmp_path):
    task = _task("dict", KeywordMLP())
    rec = search(task, "2pt", SMALL, n_trials=6, progress=False, log=lambda _: None)
    assert rec.feasible and rec.metrics.drop_points <= 2
    assert rec.test_metrics is not None and rec.test_metrics.flips is not None
    batch = task.validation_data[0]
    out = rec.model(pixels=batch["pixels"], scale=batch["scale"])
    assert isinstance(out, ClassifierOutput)  # the user's own output type comes back


def test_a_label_free_search_measures_fidelity_to_float():
    task = _task("tensor", DictOutputMLP(), metric="agreement")
    assert task.label_free
    rec = search(task, "1pt", SMALL, n_trials=6, progress=False, log=lambda _: None)
    assert rec.metrics.float_accuracy == 1.0  # float agrees with itself
    assert rec.metrics.drop_points <= 1
    assert rec.metrics.flips is not None  # agreement counts changed answers


def test_eval_fn_replaces_the_metric(mlp_accuracy):
    calls = []

    def eval_fn(model):
        calls.append(model)
        return score(model, digits_splits()["test"].batches(64), "top1")

    task = _task("pair", load_zoo_model("mlp", log=lambda _: None), eval_fn=eval_fn)
    assert task.metric.name == "eval_fn"
    value, answers = score_and_answers(task.model, task.validation_data, task)
    assert calls == [task.model] and answers is None
    rec = search(task, "2pt", SMALL, n_trials=4, progress=False, log=lambda _: None)
    assert rec.metrics.drop_points <= 2 and len(calls) > 4
    with pytest.raises(DataError, match="returned NaN from eval_fn"):
        score(task.model, [], _task("pair", task.model, eval_fn=lambda m: float("nan")))


def test_outputs_of_different_lengths_ask_for_an_output_fn():
    class Echo(torch.nn.Module):
        def forward(self, x):
            return x * 2

    data = [torch.ones(2, 5), torch.ones(2, 7)]
    task = Task("seq", Echo(), data, data)
    with pytest.raises(DataError, match="output_fn that pools them"):
        score(task.model, data, task)
    pooled = Task("seq", Echo(), data, data, output_fn=lambda out: out.mean(dim=1, keepdim=True))
    assert score(pooled.model, data, pooled) == pytest.approx(1.0)


def test_a_labelled_metric_without_targets_says_what_to_do():
    data = digits_batches("validation", 64, "tensor")
    task = Task("t", DictOutputMLP(), data, data, metric="top1")
    with pytest.raises(DataError, match="needs targets, and the batches carry none"):
        score(task.model, data, task)


def test_a_small_calibration_set_is_a_warning_not_a_refusal():
    data = digits_batches("calibration", 4, "dict")[:2]
    note = calibration_note(data, 8, Task("t", KeywordMLP(), data, data).adapter)
    assert "has 2" in note and "only 8 calibration example(s)" in note
