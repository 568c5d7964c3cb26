"""Every trial in MLflow: read back through MlflowClient and checked against the study."""

import json
import math
import os
import subprocess
import sys

import mlflow
import optuna
import pytest
import torch

from autoquant import ConfigError
from autoquant.engine.methods import get_method
from autoquant.study.run import search
from autoquant.study.space import parse_space
from autoquant.tasks import digits_task
from autoquant.tracking.record import run_tag
from autoquant.tracking.tracker import MlflowTracker, param_value
from tests.models import OutlierMLP

SPACE = parse_space(
    "methods: [fp32, static_int8, dynamic_int8, dynamic_fp16]\nbackends: [x86, fbgemm]\n"
    "activation_observers: [minmax, histogram]\ncalibration_batches: [2]\n",
    name="tracked",
)


#: The process environment around the tracked search (it logs a model with MLflow's fluent API,
#: which writes $MLFLOW_TRACKING_URI): autoquant must leave it as it was.
ENVIRONMENT: dict[str, dict] = {}


@pytest.fixture(scope="module")
def tracked_study(tmp_path_factory):
    """20 trials on the outlier model: int8 pruned, fp16 made to fail, fp32 complete."""
    folder = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{folder}/mlflow.db"
    storage = f"sqlite:///{folder}/optuna.db"
    method = get_method("dynamic_fp16")
    original = method.quantize

    def broken(*args, **kwargs):
        raise RuntimeError("injected failure")

    method.quantize = broken
    ENVIRONMENT["before"] = dict(os.environ)
    try:
        rec = search(
            digits_task(OutlierMLP(), model_name="outlier_mlp"),
            "1pt",
            SPACE,
            n_trials=20,
            seed=0,
            storage=storage,
            study_name="tracked",
            progress=False,
            log=lambda _: None,
            tracker=MlflowTracker(uri, out_dir=folder / "out"),
        )
    finally:
        method.quantize = original
    ENVIRONMENT["after"] = dict(os.environ)
    study = optuna.load_study(study_name="tracked", storage=storage)
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return rec, study, runs, uri, folder


def test_one_parent_and_a_child_per_trial(tracked_study):
    rec, study, runs, _, _ = tracked_study
    parents = [r for r in runs if r.data.tags.get(run_tag("role")) == "study"]
    children = [r for r in runs if r.data.tags.get(run_tag("role")) == "trial"]
    assert len(parents) == 1 and len(children) == 20 == len(study.trials)
    parent = parents[0]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    params = parent.data.params
    for key in (
        "task",
        "model",
        "budget",
        "space",
        "objective",
        "seed",
        "scenario",
        "version.torch",
        "version.optuna",
        "version.mlflow",
        "machine.cpu",
        "machine.cores",
        "machine.torch_threads",
    ):
        assert params[key], key
    assert params["model"] == "outlier_mlp" and params["budget"] == "1pt"
    assert params["metric"] == "top1" and params["label_free"] == "False"


def test_runs_carry_their_data_sets_and_source_tags(tracked_study):
    _, _, runs, _, _ = tracked_study
    parent = next(r for r in runs if r.data.tags.get(run_tag("role")) == "study")
    inputs = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset
        for i in parent.inputs.dataset_inputs
    }
    assert set(inputs) == {"calibration", "validation", "test", "train"}
    examples = {k: json.loads(d.profile)["num_examples"] for k, d in inputs.items()}
    assert examples == {"calibration": 180, "validation": 270, "test": 270, "train": 1077}
    assert inputs["validation"].name == "digits-validation" and len(inputs["test"].digest) == 16
    assert len({d.digest for d in inputs.values()}) == 4  # different data, different digests
    for run in runs:  # MLflow's standard tags, which create_run alone does not set
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.type"], run.info


def test_child_runs_match_the_study(tracked_study):
    _, study, runs, _, _ = tracked_study
    by_trial = {
        int(r.data.tags[run_tag("trial")]): r
        for r in runs
        if r.data.tags.get(run_tag("role")) == "trial"
    }
    states = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    seen = set()
    for trial in study.trials:
        run = by_trial[trial.number]
        state = states[trial.state.name]
        seen.add(state)
        assert run.data.tags[run_tag("state")] == state
        assert run.info.status == ("FAILED" if state == "failed" else "FINISHED")
        assert run.info.run_name.startswith(
            f"t{trial.number:03d} {trial.user_attrs['config']['method']}"
        )
        config = trial.user_attrs["config"]
        assert {k: run.data.params[k] for k in config} == {
            k: param_value(v) for k, v in config.items()
        }
        if state == "complete":
            metrics = trial.user_attrs["metrics"]
            for key in (
                "accuracy",
                "drop_points",
                "latency_ms",
                "latency_spread_ms",
                "speedup",
                "size_bytes",
                "size_ratio",
                "flips",
            ):
                assert run.data.metrics[key] == pytest.approx(metrics[key])
            if math.isfinite(metrics["output_sqnr_db"]):
                assert run.data.metrics["output_sqnr_db"] == pytest.approx(
                    metrics["output_sqnr_db"]
                )
            else:  # outputs equal to float's (fp32): no number to log
                assert "output_sqnr_db" not in run.data.metrics
            assert run.data.metrics["constraint_violation"] == pytest.approx(
                trial.system_attrs["constraints:budget"]
            )
            assert (
                run.data.tags[run_tag("feasible")]
                == str(trial.user_attrs["violation"] <= 0).lower()
            )
        if state == "failed":
            assert "injected failure" in run.data.tags[run_tag("reason")]
        if state == "pruned":  # far past the budget, or a method that keeps failing one way
            reason = run.data.tags[run_tag("reason")]
            assert "pruning limit" in reason or "failed 2 times on this model" in reason
    assert seen == {"complete", "pruned", "failed"}


def test_artifacts_of_a_trial(tracked_study):
    _, _, runs, uri, _ = tracked_study
    client = mlflow.MlflowClient(uri)
    run = next(r for r in runs if r.data.tags.get(run_tag("state")) == "complete")
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "layer_map.json"} <= files
    config = json.loads(open(client.download_artifacts(run.info.run_id, "config.json")).read())
    assert config["method"] == run.data.params["method"]


def test_recommendation_on_the_parent_run(tracked_study):
    rec, _, runs, uri, folder = tracked_study
    parent = next(r for r in runs if r.data.tags.get(run_tag("role")) == "study")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[run_tag("recommendation")] == rec.config.label()
    assert parent.data.tags[run_tag("explanation")] == rec.explanation
    assert parent.data.metrics["recommended_speedup"] == pytest.approx(rec.metrics.speedup)
    client = mlflow.MlflowClient(uri)
    files = {f.path for f in client.list_artifacts(parent.info.run_id, "recommendation")}
    assert {
        "recommendation/config.json",
        "recommendation/explanation.md",
        "recommendation/state_dict.pt",
    } <= files
    plots = {f.path for f in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/drop_vs_speedup.png", "plots/history.png"} <= plots
    assert (folder / "out" / "drop_vs_speedup.png").stat().st_size > 10_000


def test_logged_model_loads_in_a_fresh_process_with_identical_outputs(tracked_study, tmp_path):
    rec, _, runs, uri, _ = tracked_study
    parent = next(r for r in runs if r.data.tags.get(run_tag("role")) == "study")
    model_uri = parent.data.tags[run_tag("model_uri")]
    x = digits_task("mlp").test_data[0][0]
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, torch, mlflow, mlflow.pytorch\n"
        f"mlflow.set_tracking_uri({uri!r})\n"
        f"model = mlflow.pytorch.load_model({model_uri!r})\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
        f"with torch.no_grad(): torch.save(model(x), {str(tmp_path / 'y.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    with torch.no_grad():
        expected = rec.model(x)
    assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), expected)


def test_the_onnx_export_is_logged_beside_the_model_and_loads_back(tracked_study):
    pytest.importorskip("onnxruntime")
    import mlflow.onnx
    import onnxruntime

    rec, _, runs, uri, _ = tracked_study
    parent = next(r for r in runs if r.data.tags.get(run_tag("role")) == "study")
    assert rec.config.method == "fp32"  # the float model exports to ONNX
    mlflow.set_tracking_uri(uri)
    proto = mlflow.onnx.load_model(parent.data.tags[run_tag("onnx_model_uri")])
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    x = digits_task("mlp").test_data[0][0]
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(y), rec.model(x), atol=1e-4)


def test_parallel_trials_attach_to_their_parent(tmp_path, cnn_task):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    search(
        cnn_task,
        "1pt",
        SPACE,
        n_trials=6,
        n_jobs=2,
        study_name="parallel",
        progress=False,
        log=lambda _: None,
        tracker=MlflowTracker(uri),
    )
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("parallel")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = [r for r in runs if r.data.tags.get(run_tag("role")) == "study"]
    children = [r for r in runs if r.data.tags.get(run_tag("role")) == "trial"]
    assert len(parent) == 1 and len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent[0].info.run_id}
    assert sorted(int(c.data.tags[run_tag("trial")]) for c in children) == list(range(6))


def test_a_tracked_search_leaves_the_process_environment_as_it_was(tracked_study):
    assert tracked_study[0].model is not None  # the model was logged (fluent API)
    # (MLflow's telemetry keeps a private session id there, set and cleared by MLflow itself)
    before, after = (
        {k: v for k, v in e.items() if "TELEMETRY" not in k} for e in ENVIRONMENT.values()
    )
    assert after == before


def test_unreachable_tracking_server_fails_before_the_study():
    with pytest.raises(ConfigError, match="'http://127.0.0.1:9' cannot be reached"):
        MlflowTracker("http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="does not exist or is not writable"):
        MlflowTracker("sqlite:////nonexistent/folder/mlflow.db")


def test_register_puts_the_recommendation_in_the_model_registry(tmp_path, cnn_task):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    search(
        cnn_task,
        "1pt",
        "quick",
        n_trials=2,
        study_name="registered",
        progress=False,
        log=lambda _: None,
        tracker=MlflowTracker(uri, register="digits-cnn-int8"),
    )
    versions = mlflow.MlflowClient(uri).search_model_versions("name='digits-cnn-int8'")
    assert len(versions) == 1


def test_a_trial_killed_between_its_writes_is_logged_as_killed(tracked_study, tmp_path):
    # A process killed after a trial stored its metrics but before its budget violation (two
    # separate writes to the study's storage): the restart's sync must log it, not crash.
    _, study, _, _, _ = tracked_study
    measured = next(t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    attrs = {k: v for k, v in measured.user_attrs.items() if k != "violation"}
    killed = optuna.create_study()
    killed.add_trial(
        optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
    )
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")
    tracker.experiment_id = tracker.client.create_experiment("killed")
    tracker.parent_run_id = tracker.client.create_run(tracker.experiment_id).info.run_id
    assert tracker.sync(killed) == 1
    (run,) = tracker.client.search_runs(
        [tracker.experiment_id], f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}'"
    )
    assert run.info.status == "KILLED" and run.data.tags[run_tag("state")] == "killed"
    assert run.data.metrics["accuracy"] == pytest.approx(attrs["metrics"]["accuracy"])
    assert "constraint_violation" not in run.data.metrics
    assert run_tag("feasible") not in run.data.tags
