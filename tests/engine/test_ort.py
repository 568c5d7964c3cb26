"""ONNX export and ONNX Runtime: the digits zoo models exported, run in a session and compared
with PyTorch on real data; saved beside a recommendation and loaded back."""

import copy
import json
import os

import pytest
import torch

from autoquant import QuantConfig, UnsupportedError, load
from autoquant.engine.export import save
from autoquant.engine.ort import (
    export_onnx,
    output_difference,
    session_options,
    worker_affinities,
)
from autoquant.measure import score_and_answers, serialized_size

pytest.importorskip("onnxruntime")


def inputs_of(task, batches=2):
    return torch.cat([x for x, _ in task.validation_data[:batches]])


@pytest.mark.parametrize("name", ["mlp_task", "cnn_task", "lstm_task", "transformer_task"])
def test_float_model_round_trips_through_onnx_runtime(name, request):
    task = request.getfixturevalue(name)
    x = inputs_of(task)
    exported = export_onnx(task.model, x[:1])  # batch 1: the batch stays dynamic
    assert output_difference(task.model, exported, x) < 1e-4
    float_score, _ = score_and_answers(task.model, task.validation_data, task)
    onnx_score, _ = score_and_answers(exported, task.validation_data, task)
    assert onnx_score == pytest.approx(float_score)
    # the state_dict is the ONNX model: the size autoquant reports is the deployed file's
    assert abs(serialized_size(exported) - len(exported.onnx_bytes)) < 2000
    copied = copy.deepcopy(exported)  # sessions are not copied; the copy makes its own
    assert torch.equal(copied(x), exported(x))


def test_a_session_runs_on_the_threads_torch_is_set_to(mlp_task):
    exported = export_onnx(mlp_task.model, inputs_of(mlp_task, 1))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        exported(inputs_of(mlp_task, 1))
        torch.set_num_threads(2)
        exported(inputs_of(mlp_task, 1))
    finally:
        torch.set_num_threads(before)
    assert set(exported._sessions) == {1, 2}
    # the two-thread session (its worker pinned where the machine allows) agrees with one thread
    x = inputs_of(mlp_task, 2)
    try:
        torch.set_num_threads(2)
        two = exported(x)
        torch.set_num_threads(1)
        one = exported(x)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(two, one, rtol=1e-5, atol=1e-5)


def test_worker_threads_are_pinned_one_per_processor_the_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    # ONNX Runtime numbers processors from 1; the calling thread keeps the first, unpinned
    assert (worker_affinities(1), worker_affinities(2), worker_affinities(4)) == (
        None,
        "2",
        "2;3;4",
    )
    assert worker_affinities(5) is None  # more threads than processors: left to the system
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {4, 6}, raising=False)
    assert worker_affinities(2) == "7"  # a restricted process: its own processors
    options = session_options(2)
    assert options.get_session_config_entry("session.intra_op_thread_affinities") == "7"


class KeywordModel(torch.nn.Module):
    """A model called with keyword arguments, returning a dict (as Hugging Face models do)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 16)
        self.proj = torch.nn.Linear(16, 8)

    def forward(self, input_ids, attention_mask):
        hidden = self.proj(self.embed(input_ids)) * attention_mask.unsqueeze(-1)
        return {"hidden": hidden, "pooled": hidden.mean(dim=1)}


def test_keyword_inputs_and_dict_outputs_keep_their_structure():
    torch.manual_seed(0)
    model = KeywordModel().eval()
    ids = torch.randint(0, 50, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.long)
    exported = export_onnx(model, {"input_ids": ids, "attention_mask": mask})
    # keyword arguments in another order than forward's still reach the right inputs
    out = exported(attention_mask=mask, input_ids=ids)
    assert set(out) == {"hidden", "pooled"}
    assert torch.allclose(out["pooled"], model(ids, mask)["pooled"], atol=1e-5)
    with pytest.raises(UnsupportedError, match=r"takes 2 input tensor\(s\)"):
        exported(input_ids=ids)  # an input left out: said, with the names it takes


@pytest.mark.parametrize(
    ("method", "onnx_is_the_model"),
    [("fp32", False), ("dynamic_fp16", False), ("ort_fp16", True), ("ort_dynamic_int8", True)],
)
def test_save_writes_model_onnx_or_says_why_and_loads_it_back(
    method, onnx_is_the_model, transformer_task, tmp_path
):
    quantized = transformer_task.build(QuantConfig(method=method))
    x = inputs_of(transformer_task, 1)
    paths = save(quantized, tmp_path, x)
    info = json.loads(paths["config"].read_text())["onnx"]
    if method == "dynamic_fp16":  # torch.ao's packed fp16 weights have no ONNX form
        assert "onnx" not in paths and "which ONNX export needs" in info["error"]
        assert "ort_" in info["error"]  # and what to do instead
        return
    assert info["file"] == "model.onnx" and (tmp_path / "model.onnx").is_file()
    if onnx_is_the_model:
        assert paths["model"].name == "model.onnx" and not (tmp_path / "model.pt").exists()
    else:
        assert info["max_abs_difference"] < 1e-4  # ONNX Runtime runs what PyTorch runs
    loaded = load(tmp_path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), quantized(x), atol=1e-5)
