"""The search on real digits models: constraint, pruning, failures, duplicates, resume, seeds."""

import optuna
import pytest

import autoquant.study.trial as trial_module
from autoquant import ConfigError, QuantConfig
from autoquant.engine.methods import get_method
from autoquant.study.run import search
from autoquant.study.space import parse_space
from autoquant.tasks import digits_task
from tests.models import BranchingMLP, OutlierMLP

INT8_ONLY = parse_space(
    "methods: [static_int8, dynamic_int8]\nbackends: [x86]\nactivation_observers: [minmax]\n"
    "weight_observers: [minmax, per_channel_minmax]\ncalibration_batches: [2]\n",
    name="int8-only",
)
WITH_FLOAT = parse_space(
    "methods: [fp32, static_int8, dynamic_int8]\nbackends: [x86, fbgemm]\n"
    "activation_observers: [minmax]\ncalibration_batches: [2]\n",
    name="with-float",
)


@pytest.fixture
def count_apply(monkeypatch):
    """The configurations trials built (the final round's rebuilds are not counted)."""
    calls = []
    original = trial_module.Evaluator.__call__

    def counting(self, config):
        calls.append(config)
        return original(self, config)

    monkeypatch.setattr(trial_module.Evaluator, "__call__", counting)
    return calls


@pytest.fixture(scope="module")
def outlier_task():
    return digits_task(OutlierMLP(), model_name="outlier_mlp")


def quiet(**kwargs):
    return {"progress": False, "log": lambda _: None, **kwargs}


def test_feasible_study_sets_the_budget_constraint(cnn_task, tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    rec = search(cnn_task, "1pt", "quick", n_trials=5, storage=storage, study_name="s", **quiet())
    assert rec.feasible and rec.within_budget_on_test
    assert rec.metrics.drop_points <= 1.0 and rec.test_metrics.drop_points <= 1.0
    study = optuna.load_study(study_name="s", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:
        violation = trial.system_attrs["constraints:budget"]
        assert violation == pytest.approx(trial.user_attrs["metrics"]["drop_points"] - 1.0)
        assert trial.user_attrs["metrics"]["flips"] >= 0  # answers changed against float's
    examples = sum(len(targets) for _, targets in cnn_task.validation_data)
    flips = f"changes {rec.metrics.flips} of float's {examples} validation answers"
    assert flips in rec.explanation
    # the fastest, unless one within the timing noise changes fewer answers (timing decides)
    assert ("It was the fastest of the" in rec.explanation) != (
        "changes fewer of float's validation answers" in rec.explanation
    )
    assert "finer than one validation example" not in rec.explanation  # 1pt: 2.7 examples
    assert rec.model.config == rec.config
    assert rec.layer_map == rec.model.layer_map


def test_a_budget_finer_than_one_validation_example_is_flagged(cnn_task):
    said = []
    rec = search(cnn_task, "0.25pt", "quick", n_trials=2, progress=False, log=said.append)
    examples = sum(len(targets) for _, targets in cnn_task.validation_data)
    finer = f"finer than one validation example ({100 / examples:.2f}pt, 1 of {examples})"
    assert finer in rec.explanation
    # said before the first trial, with the examples the budget would need
    assert finer in said[0] and "needs about 656 validation examples" in said[0]


def test_qat_is_not_run_when_static_int8_with_the_same_choices_holds(
    cnn_task, count_apply, monkeypatch
):
    space = parse_space(
        "methods: [static_int8, qat_int8]\nbackends: [x86]\nactivation_observers: [minmax]\n"
        "weight_observers: [per_channel_minmax]\ncalibration_batches: [2]\n",
        name="static-and-qat",
    )
    static = QuantConfig("static_int8", "x86", activation_observer="minmax", calibration_batches=2)
    qat = QuantConfig("qat_int8", "x86", activation_observer="minmax")
    monkeypatch.setattr(
        "autoquant.study.run.Objective.prior_configs", lambda self, top=3: [static, qat]
    )
    rec = search(cnn_task, "1pt", space, n_trials=2, **quiet())
    first, second = rec.records
    assert first.config.method == "static_int8" and first.feasible
    assert second.config.method == "qat_int8" and second.state == "pruned"
    assert f"as {first.config.label()} (trial 0), which holds the budget" in second.failure
    assert [c.method for c in count_apply] == ["static_int8"]  # no fine-tuning was run
    assert rec.config.method == "static_int8"


def test_infeasible_study_returns_best_effort_marked(outlier_task):
    rec = search(outlier_task, "1pt", INT8_ONLY, n_trials=4, prune=False, **quiet())
    assert not rec.feasible
    assert rec.config.method in ("static_int8", "dynamic_int8")
    assert rec.metrics.drop_points > 1.0
    assert "No configuration met the budget" in rec.explanation
    evaluated = [r for r in rec.records if r.metrics and r.duplicate_of is None]
    assert rec.metrics.drop_points == min(r.metrics.drop_points for r in evaluated)


def test_pruning_stops_hopeless_trials_and_reports_saved_time(outlier_task):
    rec = search(outlier_task, "1pt", WITH_FLOAT, n_trials=10, seed=3, **quiet())
    pruned = [r for r in rec.records if r.state == "pruned"]
    assert pruned, "int8 on the outlier model drops ~85 points: its trials must be pruned"
    # beyond the limit, and resolved by the subset: its interval's lower bound past the budget
    assert all(
        "beyond the pruning limit" in r.failure and "interval" in r.failure
        for r in pruned
        if r.duplicate_of is None
    )
    assert rec.config.method == "fp32" and rec.feasible
    assert rec.pruning_saved_seconds > 0


def test_failed_trial_is_recorded_and_the_study_goes_on(cnn_task, monkeypatch):
    method = get_method("dynamic_int8")

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(method, "quantize", broken)
    rec = search(cnn_task, "1pt", WITH_FLOAT, n_trials=10, seed=1, **quiet())
    failed = [r for r in rec.records if r.state == "failed"]
    assert failed and all("kernel exploded" in r.failure for r in failed)
    assert all(r.config.method == "dynamic_int8" for r in failed)
    assert rec.counts["complete"] > 0 and rec.feasible


def test_a_method_failing_the_same_way_twice_is_not_run_again(cnn_task, monkeypatch):
    method = get_method("dynamic_int8")

    def broken(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(method, "quantize", broken)
    space = parse_space(
        "methods: [fp32, dynamic_int8]\nbackends: [x86]\n"
        "weight_observers: [minmax, per_channel_minmax]\n",
        name="dynamic-only",
    )
    rec = search(cnn_task, "1pt", space, n_trials=8, warm_start="none", **quiet())
    dynamic = [r for r in rec.records if r.config.method == "dynamic_int8"]
    assert len([r for r in dynamic if r.state == "failed"]) == 2
    skipped = [r for r in dynamic if r.state == "pruned"]
    assert skipped and all(
        "failed 2 times on this model with the same error" in r.failure for r in skipped
    )


def test_a_configuration_is_evaluated_once(cnn_task, count_apply):
    rec = search(cnn_task, "1pt", "quick", n_trials=12, **quiet())
    duplicates = [r for r in rec.records if r.duplicate_of is not None]
    assert duplicates, "the quick space holds 4 configs: 12 trials must repeat some"
    keys = [c.to_json() for c in count_apply]
    assert len(keys) == len(set(keys))
    for dup in duplicates:
        original = rec.records[dup.duplicate_of]
        assert dup.config == original.config
        assert dup.metrics == original.metrics


def test_resume_continues_without_repeating(cnn_task, tmp_path, count_apply):
    storage = f"sqlite:///{tmp_path}/resume.db"
    kwargs = quiet(storage=storage, study_name="resume", seed=0)
    search(cnn_task, "1pt", WITH_FLOAT, n_trials=4, **kwargs)
    first = optuna.load_study(study_name="resume", storage=storage).trials
    count_apply.clear()
    rec = search(cnn_task, "1pt", WITH_FLOAT, n_trials=7, **kwargs)
    after = optuna.load_study(study_name="resume", storage=storage).trials
    assert len(after) == 7
    assert [t.params for t in after[:4]] == [t.params for t in first]
    assert [t.values for t in after[:4]] == [t.values for t in first]
    # only the 3 new trials (minus duplicates) were quantized
    assert len(count_apply) <= 3
    assert len(rec.records) == 7


def test_resume_with_other_settings_is_refused(cnn_task, tmp_path):
    kwargs = quiet(storage=f"sqlite:///{tmp_path}/x.db", study_name="x")
    search(cnn_task, "1pt", "quick", n_trials=1, **kwargs)
    with pytest.raises(ConfigError, match="was started with a different \\['budget'\\]"):
        search(cnn_task, "2pt", "quick", n_trials=2, **kwargs)


def test_same_seed_same_configurations(mlp_task):
    def sequence(seed):
        rec = search(
            mlp_task, "1pt", "default", objective="size", n_trials=10, seed=seed, **quiet()
        )
        return [r.config for r in rec.records]

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)


def test_latency_objective_never_recommends_slower_than_float(mlp_task):
    rec = search(mlp_task, "1pt", "quick", n_trials=6, **quiet())
    assert rec.config.method == "fp32" or rec.metrics.speedup >= 1.0


def test_parallel_trials(cnn_task):
    rec = search(cnn_task, "1pt", WITH_FLOAT, n_trials=6, n_jobs=2, **quiet())
    assert len(rec.records) == 6 and rec.feasible


def test_pareto_objective_returns_a_front(cnn_task):
    rec = search(cnn_task, "1pt", WITH_FLOAT, objective="pareto", n_trials=6, **quiet())
    assert rec.pareto_front
    for point in rec.pareto_front:
        assert {"trial", "config", "speedup", "size_ratio", "drop", "feasible"} <= set(point)


def test_bad_arguments(cnn_task):
    with pytest.raises(ConfigError, match="'objective' parameter of search must be one of"):
        search(cnn_task, "1pt", "quick", objective="speed", **quiet())
    with pytest.raises(ConfigError, match="'warm_start' parameter of search must be one of"):
        search(cnn_task, "1pt", "quick", warm_start="expert", **quiet())
    with pytest.raises(ConfigError, match="'n_trials' or 'timeout'"):
        search(cnn_task, "1pt", "quick", n_trials=None, **quiet())
    with pytest.raises(ConfigError, match="'budget' parameter must be a drop like"):
        search(cnn_task, "lots", "quick", n_trials=1, **quiet())
    with pytest.raises(ConfigError, match="search got 'n_trial'.* Did you mean 'n_trials'"):
        search(cnn_task, "1pt", "quick", n_trial=1, **quiet())


def test_every_layer_kept_in_float_is_the_float_model(mlp_task):
    space = parse_space("methods: [dynamic_int8]\nlayers: {mode: per_layer}\n", name="all-float")
    all_float = QuantConfig(method="dynamic_int8", keep_float=("fc1", "fc2", "fc3"))
    rec = search(mlp_task, "1pt", space, n_trials=6, warm_start=[all_float], seed=0, **quiet())
    assert rec.records[0].config == QuantConfig(method="fp32")  # the enqueued all-float trial
    for record in rec.records:
        assert record.config.method == "fp32" or len(record.config.keep_float) < 3


def test_methods_the_model_cannot_take_are_left_out_with_the_reason(capfd):
    task = digits_task(BranchingMLP(), model_name="branching")  # no torch.fx, no torch.export
    said = []
    rec = search(task, "1pt", "default", n_trials=8, progress=False, log=said.append)
    left_out = {"qat_int8": "torch.fx cannot trace", "pt2e_static_int8": "torch.export cannot"}
    for method, reason in left_out.items():
        note = next(n for n in rec.notes if n.startswith(f"{method} is left out"))
        assert reason in note and f"note: {note}" in said
    assert not {r.config.method for r in rec.records} & set(left_out)
    assert rec.records and "Traceback" not in capfd.readouterr().err


def test_a_failed_trial_prints_one_line(cnn_task, monkeypatch, capfd):
    method = get_method("dynamic_int8")

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure\nwith a second line")

    monkeypatch.setattr(method, "quantize", broken)
    said = []
    search(cnn_task, "1pt", INT8_ONLY, n_trials=4, progress=False, log=said.append)
    failed = [line for line in said if " failed: " in line]
    assert failed and all(line.endswith("RuntimeError: injected failure") for line in failed)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "injected failure" not in err  # not Optuna's warning


def test_qat_is_left_out_of_a_task_without_training_data():
    from tests.own_task import keyword_task

    space = parse_space(
        "methods: [static_int8, qat_int8]\nbackends: [x86]\ncalibration_batches: [2]\n",
        name="with-qat",
    )
    rec = search(keyword_task(), "2pt", space, n_trials=2, progress=False, log=lambda _: None)
    assert any(n.startswith("qat_int8 is left out") and "no train_data" in n for n in rec.notes)
    assert {r.config.method for r in rec.records} == {"static_int8"}


def test_confidence_mode_rejects_a_drop_the_data_cannot_vouch_for(mlp_task):
    # dynamic int8 changes no validation answer of the MLP's 270: its drop is 0, within a
    # 0.5-point budget, but the upper 90 % bound of that drop is 0.56 points: what 270
    # examples can say about new data. Confidence mode judges the bound, not the drop.
    plain = search(mlp_task, "0.5pt", "quick", n_trials=4, **quiet())
    sure = search(mlp_task, "0.5pt", "quick", n_trials=4, confidence=0.9, **quiet())
    dynamic = [r for r in plain.records if r.metrics and r.config.method == "dynamic_int8"]
    assert dynamic and dynamic[0].metrics.drop_points <= 0.5 and dynamic[0].feasible
    judged = [r for r in sure.records if r.metrics and r.config.method == "dynamic_int8"][0]
    assert judged.metrics.drop_points == dynamic[0].metrics.drop_points
    assert judged.metrics.drop_upper > 0.5 and not judged.feasible
    for record in sure.records:
        if record.feasible:
            assert record.metrics.drop_upper <= 0.5
    assert "upper 90 % bound, which confidence mode judges" in sure.explanation


def test_onnx_runtime_trials_run_inside_a_real_search(transformer_task):
    pytest.importorskip("onnxruntime")
    space = parse_space(
        "methods: [ort_fp32, ort_dynamic_int8, ort_static_int8]\nbackends: [x86]\n"
        "activation_observers: [minmax, histogram, percentile]\ncalibration_batches: [2]\n"
        "activation_dtypes: [quint8, qint8]\nweight_dtypes: [qint8, quint8]\n",
        name="onnx-runtime",
    )
    rec = search(transformer_task, "1pt", space, n_trials=8, seed=0, **quiet())
    measured = {r.config.method: r for r in rec.records if r.metrics}
    assert set(measured) == {"ort_fp32", "ort_dynamic_int8", "ort_static_int8"}
    # timed in the session against eager float and float in ONNX Runtime, sized by the ONNX file
    assert all(r.metrics.speedup > 0 for r in measured.values())
    assert all(r.metrics.speedup_vs_onnx_float > 0 for r in measured.values())
    assert measured["ort_fp32"].metrics.size_ratio == pytest.approx(1.0, abs=0.05)
    assert measured["ort_dynamic_int8"].metrics.size_ratio < 0.6
    assert rec.config.method.startswith("ort_") or rec.config.method == "fp32"
    assert rec.feasible and rec.metrics.drop_points <= 1.0
    if rec.config.method.startswith("ort_"):
        # the final round's figure (on the test data), beside the one against eager float
        final = rec.test_metrics.speedup_vs_onnx_float
        assert f"({final:.2f}x float in ONNX Runtime)" in rec.explanation
