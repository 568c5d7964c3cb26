"""Compile-aware recommendation: compiled float as a candidate and as a baseline."""

import pytest
import torch

from autoquant import QuantConfig, apply, capabilities, load
from autoquant.engine.export import COMPILE_NOTE_FILE, EXPORTED_FILE, save
from autoquant.engine.methods.base import TORCH_AO_CANNOT_COMPILE
from autoquant.measure import FloatReference, get_scenario
from autoquant.study.run import open_search, search
from autoquant.study.space import parse_space
from autoquant.study.trial import Baseline, Evaluator
from autoquant.tasks import digits_task
from tests.models import ManyOpsMLP

COMPILED_FLOAT = QuantConfig(method="fp32", compile="inductor")

SPACE = parse_space(
    "methods: [fp32, dynamic_int8]\nbackends: [x86]\nweight_observers: [per_channel_minmax]\n"
    "compile: [off, inductor]\n",
    name="compile-test",
)


def evaluator(task, scenario):
    reference = FloatReference.of(task, get_scenario(scenario))
    baseline = Baseline(reference.accuracy, reference.accuracy, reference.size_bytes)
    return Evaluator(task, None, baseline, [], reference, prune=False)


def test_capability_table_says_where_compile_applies_and_why_not():
    rows = {r["method"]: r for r in capabilities() if r["backend"] == "x86"}
    assert rows["fp32"]["compile"] == "optional"
    assert rows["pt2e_static_int8"]["compile"] == "always"
    for method in ("static_int8", "qat_int8", "dynamic_int8", "dynamic_fp16"):
        assert rows[method]["compile"] == "no"
        assert "quantized nyi in meta tensors" in rows[method]["compile_note"]


def test_compile_choice_is_honoured_and_timed_against_both_baselines(cnn_task):
    model = apply(cnn_task.model, COMPILED_FLOAT, cnn_task.calibration_data)
    assert model.needs_compile and model.compiled is None
    outcome = evaluator(cnn_task, "bs1-t1")(COMPILED_FLOAT)
    metrics = outcome.metrics
    assert metrics["reference"] == "float"  # bs1-t1: against eager float
    assert metrics["compile_seconds"] > 0
    assert metrics["speedup"] == pytest.approx(metrics["speedup_vs_eager"])
    assert metrics["speedup_vs_compiled"] > 0
    assert metrics["drop_points"] == pytest.approx(0.0, abs=0.5)

    compiled_baseline = evaluator(cnn_task, "bs1-t1-compiled")
    static = compiled_baseline(QuantConfig(method="static_int8"))
    assert static.metrics["reference"] == "compiled float"
    assert static.metrics["speedup"] == pytest.approx(static.metrics["speedup_vs_compiled"])
    assert static.metrics["compile_seconds"] == 0.0  # torch.ao: never compiled
    first_reference = compiled_baseline.reference.compiled
    compiled_baseline(QuantConfig(method="dynamic_int8"))
    assert compiled_baseline.reference.compiled is first_reference  # compiled once per study


def test_compile_is_skipped_with_its_reason_where_it_cannot_apply(mlp_task):
    session = open_search(mlp_task, "1pt", SPACE, n_trials=6, log=print)
    session.run(progress=False)
    trials = session.study.get_trials(deepcopy=False)
    dynamic = [t for t in trials if t.user_attrs["config"]["method"] == "dynamic_int8"]
    assert dynamic and all(
        t.user_attrs["compile_skipped"] == TORCH_AO_CANNOT_COMPILE for t in dynamic
    )
    assert all(t.user_attrs["config"]["compile"] == "off" for t in dynamic)
    compiled = [t for t in trials if t.user_attrs["config"] == COMPILED_FLOAT.to_dict()]
    assert compiled, "compiled float was not among the first trials"
    assert compiled[0].user_attrs["metrics"]["compile_seconds"] > 0


def test_compiled_float_can_be_the_recommendation_and_exports_with_its_settings(tmp_path):
    # 300 elementwise ops: eager runs 300 kernels, Inductor one; the MLP's dynamic int8 is
    # slower than float on this CPU. The fastest option within budget loses nothing.
    task = digits_task(ManyOpsMLP(), model_name="many-ops-mlp")
    rec = search(task, "1pt", SPACE, n_trials=5, progress=False, log=print)
    assert rec.config == COMPILED_FLOAT, rec.explanation
    assert rec.metrics.speedup > 2
    assert "No quantization was needed" in rec.explanation
    example = task.validation_data[0][0][:1]
    paths = save(rec.model, tmp_path, example)
    assert paths["model"].name == EXPORTED_FILE
    assert "freezing" in (tmp_path / COMPILE_NOTE_FILE).read_text()
    loaded = load(tmp_path)
    x = task.validation_data[0][0][:4]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), task.model(x), rtol=1e-3, atol=1e-3)
    assert isinstance(loaded.scripted, torch._dynamo.eval_frame.OptimizedModule)


def test_a_compiled_model_scores_through_the_kernels_it_is_timed_with(mlp_task):
    # Compiled on one example, it must also score a batch of 5 through the compiled module
    # (one example at a time), not through its eager graph: the two can differ (int8 kernels).
    quantized = apply(mlp_task.model, COMPILED_FLOAT, mlp_task.calibration_data)
    x = mlp_task.validation_data[0][0]
    quantized.compile(x[:1], threads=1)
    calls = []

    class Spy(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, batch):
            calls.append(len(batch))
            return self.inner(batch)

    object.__setattr__(quantized, "compiled", Spy(quantized.compiled))
    with torch.no_grad():
        torch.testing.assert_close(quantized(x[:5]), mlp_task.model(x[:5]), rtol=1e-4, atol=1e-4)
    assert calls == [1, 1, 1, 1, 1]


def test_a_batch_with_other_strides_does_not_compile_the_model_again(mlp_task):
    # NumPy-sliced batches have stride 0 on their size-1 channel dimension, a concatenated
    # batch 64; Dynamo guards on both, and a recompile would drop the frozen weights.
    from torch._dynamo.utils import counters

    quantized = apply(mlp_task.model, COMPILED_FLOAT, mlp_task.calibration_data)
    x = mlp_task.validation_data[0][0][:8]
    quantized.compile(torch.cat([x[:4], x[4:]]), threads=1)
    odd = x.as_strided(x.shape, (64, 0, 8, 1))
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        torch.testing.assert_close(quantized(odd), mlp_task.model(x), rtol=1e-4, atol=1e-4)
    assert counters["stats"]["unique_graphs"] == graphs


def test_a_loaded_compiled_model_compiles_again_with_frozen_weights(
    mlp_task, tmp_path, monkeypatch
):
    # torchao's PT2E conversion clears Dynamo's caches, and the next call of a compiled model
    # compiles it again: that compilation must use the measured settings (frozen weights) too.
    import torch._inductor.compile_fx as compile_fx

    x = mlp_task.validation_data[0][0][:1]
    save(apply(mlp_task.model, COMPILED_FLOAT, mlp_task.calibration_data), tmp_path, x)
    loaded = load(tmp_path)
    freezing = []
    original = compile_fx.compile_fx

    def spy(*args, **kwargs):
        freezing.append(torch._inductor.config.freezing)
        return original(*args, **kwargs)

    monkeypatch.setattr(compile_fx, "compile_fx", spy)
    with torch.no_grad():
        loaded(x)
        torch._dynamo.reset()
        out = loaded(x)
    torch.testing.assert_close(out, mlp_task.model(x), rtol=1e-4, atol=1e-4)
    assert len(freezing) >= 2 and all(freezing), freezing
