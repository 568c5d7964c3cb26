"""The expert rules, and how their candidates start every study."""

import dataclasses

import optuna
import pytest

from autoquant.cli import main
from autoquant.engine.budget import Budget
from autoquant.measure.inspect import inspect
from autoquant.recommend.prior import best_estimate, estimate, prior_candidates
from autoquant.study.run import search
from autoquant.tracking.record import attributes


def candidates_for(task, **kwargs):
    report = inspect(task.model, task.validation_data[0][0][:1])
    return prior_candidates(report, Budget(1.0), **kwargs)


def methods(candidates):
    return [(c.config.method, c.config.backend) for c in candidates]


def test_conv_model_gets_static_int8_per_channel_histogram(cnn_task):
    found = candidates_for(cnn_task)
    static = [c for c in found if c.config.method == "static_int8"]
    assert static[0].config.backend == "x86"
    assert static[0].config.weight_observer == "per_channel_minmax"
    assert static[0].config.activation_observer == "histogram"
    assert "convolution" in static[0].reason
    assert ("static_int8", "fbgemm") in methods(found)


def test_throughput_puts_torchao_then_onednn_symmetric_first_for_conv_models(cnn_task, mlp_task):
    found = candidates_for(cnn_task, batch_size=64)
    assert methods(found)[:5] == [
        ("pt2e_static_int8", "x86"),
        ("pt2e_static_int8", "x86"),
        ("static_int8", "onednn"),
        ("static_int8", "x86"),
        ("static_int8", "fbgemm"),
    ]
    assert "PT2E" in found[0].reason and "64 examples" in found[0].reason
    assert found[0].config.keep_float == ()
    onednn = found[2].config
    assert (onednn.qscheme, onednn.reduce_range) == ("symmetric", False)
    assert "symmetric weights" in found[2].reason
    sensitivity = [{"name": "block3.0", "drop_points": 5.0}, {"name": "fc", "drop_points": 0.1}]
    with_sensitive = candidates_for(cnn_task, batch_size=64, sensitivity=sensitivity)
    kept = with_sensitive[1]
    assert (kept.config.method, kept.config.keep_float) == ("pt2e_static_int8", ("block3.0",))
    # the classifier rule is a speed refinement of an all-int8 model: not proposed beside
    # layers kept in float for accuracy
    assert [c.config.keep_float for c in with_sensitive].count(("fc",)) == 0
    # not at batch 1, not for the mobile target, not for a Linear model
    at_batch_1 = methods(candidates_for(cnn_task))
    assert "pt2e_static_int8" not in [m for m, _ in at_batch_1]
    assert ("static_int8", "onednn") not in at_batch_1
    mobile = candidates_for(cnn_task, batch_size=64, target="mobile")
    assert "pt2e_static_int8" not in [m for m, _ in methods(mobile)]
    assert ("static_int8", "onednn") not in methods(mobile)
    linear_model = candidates_for(mlp_task, batch_size=64)
    assert ("static_int8", "onednn") not in methods(linear_model)
    # a Linear model's PT2E candidate is the full-range one of the Linear rule, not this one
    assert all(
        not c.config.reduce_range for c in linear_model if c.config.method == "pt2e_static_int8"
    )


def test_linear_models_get_full_range_pt2e_after_dynamic_int8(transformer_task):
    found = candidates_for(transformer_task)
    order = methods(found)
    assert order.index(("dynamic_int8", "x86")) < order.index(("pt2e_static_int8", "x86"))
    pt2e = found[order.index(("pt2e_static_int8", "x86"))]
    assert (pt2e.config.reduce_range, pt2e.config.activation_observer) == (False, "minmax")
    assert "all-MiniLM-L6-v2" in pt2e.reason and "full 8-bit" in pt2e.reason
    assert "pt2e_static_int8" not in [
        m for m, _ in methods(candidates_for(transformer_task, target="mobile"))
    ]


def test_throughput_keeps_the_classifier_in_float_for_conv_models(cnn_task):
    classifier = candidates_for(cnn_task, batch_size=64)[1]
    assert classifier.config.method == "pt2e_static_int8"
    assert classifier.config.keep_float == ("fc",)
    assert classifier.reason.startswith("fc, the Linear that runs last")
    at_batch_1 = candidates_for(cnn_task)
    assert all(c.config.keep_float != ("fc",) for c in at_batch_1)
    # a classifier doing much of the compute is worth quantizing: no such candidate
    report = inspect(cnn_task.model, cnn_task.validation_data[0][0][:1])
    heavy = [
        dataclasses.replace(x, compute_share=0.3) if x.name == "fc" else x for x in report.layers
    ]
    found = prior_candidates(dataclasses.replace(report, layers=heavy), Budget(1.0), batch_size=64)
    assert all(c.config.keep_float != ("fc",) for c in found)


def test_a_compiled_candidate_is_estimated_compiled(cnn_task, monkeypatch):
    # its eager graph runs reference int8 ops, not the kernels it deploys with: it must be
    # compiled before it is timed, as a search times it
    import autoquant.measure.compare
    from autoquant.engine.quantized import QuantizedModel
    from autoquant.measure import get_scenario

    timed = []
    original = autoquant.measure.compare.measure_latency

    def spy(models, *args, **kwargs):
        timed.extend(
            m.compiled is not None for m in models.values() if isinstance(m, QuantizedModel)
        )
        return original(models, *args, **kwargs)

    monkeypatch.setattr(autoquant.measure.compare, "measure_latency", spy)
    pt2e = candidates_for(cnn_task, batch_size=64)[:1]
    (estimated,) = estimate(cnn_task, pt2e, get_scenario("bs64-t2"))
    assert estimated.error is None and estimated.speedup > 0, estimated
    assert timed == [True]


def test_mobile_target_uses_qnnpack(cnn_task):
    found = candidates_for(cnn_task, target="mobile")
    assert {c.config.backend for c in found if c.config.method != "fp32"} == {"qnnpack"}
    assert all(not c.config.reduce_range for c in found if c.config.method == "static_int8")


def test_recurrent_and_linear_models_get_dynamic_int8(lstm_task, transformer_task):
    for task in (lstm_task, transformer_task):
        found = candidates_for(task)
        assert ("dynamic_int8", "x86") in methods(found)
        assert "static_int8" not in [c.config.method for c in found]
        assert ("dynamic_fp16", "x86") in methods(found)  # the fallback


def test_sensitive_layers_are_kept_in_float(cnn_task):
    sensitivity = [
        {"name": "block1.0", "drop_points": 2.0},
        {"name": "fc", "drop_points": 0.6},
        {"name": "block2.0", "drop_points": 0.1},
    ]
    found = candidates_for(cnn_task, sensitivity=sensitivity)
    kept = [c for c in found if c.config.keep_float]
    assert kept[0].config.keep_float == ("block1.0", "fc")
    assert "block1.0, fc lose the most" in kept[0].reason


def test_tiny_model_puts_float_first(mlp_task):
    found = candidates_for(mlp_task)
    assert found[0].config.method == "fp32" and "multiply-accumulates" in found[0].reason


def test_estimates_and_best(cnn_task):
    estimates = estimate(cnn_task, candidates_for(cnn_task))
    assert all(e.speedup > 0 and 0 < e.size_ratio <= 1.01 for e in estimates)
    best = best_estimate(estimates, Budget(1.0))
    assert best.drop <= 1.0
    assert best.speedup == max(e.speedup for e in estimates if e.drop <= 1.0)


def test_prior_candidates_are_the_first_trials(cnn_task, tmp_path):
    storage = f"sqlite:///{tmp_path}/p.db"
    search(
        cnn_task,
        "1pt",
        "default",
        n_trials=4,
        storage=storage,
        study_name="p",
        progress=False,
        log=lambda _: None,
    )
    trials = optuna.load_study(study_name="p", storage=storage).trials
    first = [(t.params["method"], t.params.get("backend[static_int8]")) for t in trials[:2]]
    assert first == [("static_int8", "x86"), ("static_int8", "fbgemm")]
    assert trials[0].params["activation_observer"] == "histogram"
    assert trials[0].params["float_layers"] == 0


def test_no_warm_start_enqueues_nothing(cnn_task, tmp_path):
    storage = f"sqlite:///{tmp_path}/n.db"
    search(
        cnn_task,
        "1pt",
        "default",
        n_trials=2,
        storage=storage,
        study_name="n",
        warm_start="none",
        progress=False,
        log=lambda _: None,
        seed=5,
    )
    trials = optuna.load_study(study_name="n", storage=storage).trials
    # only a local step (a new best with one layer fewer in float) may be queued
    assert all("fixed_params" not in t.system_attrs or "step_of" in attributes(t) for t in trials)


@pytest.mark.parametrize("model", ["mlp", "cnn", "lstm"])
def test_recommend_command_prints_a_suggestion_with_reasons(model, capsys):
    assert main(["recommend", model]) == 0
    out = capsys.readouterr().out
    assert "Suggestion:" in out and "est. speedup" in out and "why" in out


def test_recommend_command_suggests_for_the_scenario(capsys):
    assert main(["recommend", "cnn", "--scenario", "bs64-t2"]) == 0
    out = capsys.readouterr().out
    assert "pt2e_static_int8" in out and "at bs64-t2" in out


def test_onnx_runtime_candidates_lead_at_one_example_and_follow_at_throughput(
    cnn_task, transformer_task
):
    pytest.importorskip("onnxruntime")
    found = candidates_for(transformer_task)
    # (the digits transformer is tiny: eager float comes first, as for every tiny model)
    assert methods(found)[:3] == [("fp32", "x86"), ("ort_dynamic_int8", "x86"), ("ort_fp32", "x86")]
    dynamic = found[1]
    assert dynamic.config.reduce_range is False and "5.7" in dynamic.reason
    assert dynamic.config.weight_observer == "per_channel_minmax"
    conv = next(c for c in candidates_for(cnn_task) if c.config.method != "fp32")
    assert conv.config.method == "ort_static_int8" and conv.config.reduce_range is False
    # at 64 examples per call PyTorch's int8 won on convolutions: ONNX Runtime's come after
    throughput = methods(candidates_for(cnn_task, batch_size=64))
    assert throughput[0] == ("pt2e_static_int8", "x86")
    assert throughput[-2:] == [("ort_static_int8", "x86"), ("ort_fp32", "x86")]
    # and on Linear models too: PT2E's static int8 won on MiniLM at 64 sentences per call
    dense = methods(candidates_for(transformer_task, batch_size=64))
    assert dense[0] == ("fp32", "x86")
    assert dense[-2:] == [("ort_dynamic_int8", "x86"), ("ort_fp32", "x86")]
    assert "ort_fp32" not in [m for m, _ in methods(candidates_for(cnn_task, target="mobile"))]
    # a space without ONNX Runtime's methods: the model is not even exported, none is proposed
    report = inspect(cnn_task.model, cnn_task.validation_data[0][0][:1], ["fp32", "static_int8"])
    assert not any(
        c.config.method.startswith("ort_") for c in prior_candidates(report, Budget(1.0))
    )
