"""A user's own model and data from the command line: ``--task module:attr``, YAML files naming
it, the ``imagefolder`` and ``tensors`` tasks, any ``bs{N}-t{M}`` scenario, and bad input
refused before any work, with nothing written to the Optuna storage or the MLflow store."""

import json
import sqlite3

import numpy as np
import pytest
import torch
from PIL import Image

from autoquant.cli import main
from autoquant.measure import Scenario, get_scenario
from autoquant.study.experiment import TaskSpec, build_task
from autoquant.tasks.digits import digits_splits
from autoquant.tracking.record import run_tag


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _search(*flags: str) -> int:
    return main(
        ["search", *flags, "--space", "quick", "--trials", "3", "--no-tracking"]
        + ["--storage", "sqlite:///studies.db"]
    )


def test_search_a_task_named_module_attr(tmp_path, capsys):
    code = _search("--task", "tests.own_task:keyword_task", "--study", "own", "--out", "out")
    out = capsys.readouterr().out
    assert code in (0, 3), out
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["metrics"]["float_accuracy"] > 0.9  # top1 on the dict batches' labels
    assert "Label-free" not in out
    assert "ClassifierOutput" in saved["model_file_error"]  # no TorchScript: said why


def test_a_yaml_experiment_names_the_task_and_a_scenario(tmp_path, capsys):
    (tmp_path / "exp.yaml").write_text(
        "task: tests.own_task:keyword_task\nscenario: bs8-t1\nbudget: 2pt\nspace: quick\n"
        "trials: 3\nstorage: sqlite:///studies.db\nstudy: yaml\nout: out\n"
    )
    assert main(["search", "exp.yaml", "--no-tracking"]) in (0, 3)
    assert "(bs8-t1)" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "config.json").read_text())["metrics"]["scenario"] == (
        "bs8-t1"
    )


def test_any_scenario_name_parses():
    assert get_scenario("bs16-t4") == Scenario(16, 4)
    assert get_scenario("bs3-t1-compiled") == Scenario(3, 1, "compiled")
    for bad in ("bs0-t1", "bs1", "batch64"):
        with pytest.raises(Exception, match="must be 'bs\\{N\\}-t\\{M\\}'"):
            get_scenario(bad)


def _image_folder(root, per_class: int = 12) -> None:
    """Real digits as photo-like PNGs, one folder per class ('0', '1', '2')."""
    split = digits_splits()["test"]
    counts = {c: 0 for c in range(3)}
    for image, label in zip(split.inputs, split.targets, strict=True):
        label = int(label)
        if label in counts and counts[label] < per_class:
            pixels = (image[0].numpy() * 255).astype(np.uint8)
            folder = root / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            picture = Image.fromarray(pixels).resize((32, 32)).convert("RGB")
            picture.save(folder / f"{counts[label]}.png")
            counts[label] += 1


def test_imagefolder_on_a_small_generated_folder(tmp_path, capsys):
    _image_folder(tmp_path / "images")
    task = build_task(
        TaskSpec(
            task="imagefolder",
            model="tests.own_task:RGBDigits",
            data=str(tmp_path / "images"),
            resize=32,
            crop=32,
            mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0],
        )
    )
    x, y = task.validation_data[0]
    assert x.shape[1:] == (3, 32, 32) and set(y.tolist()) <= {0, 1, 2}
    assert sum(len(b[1]) for b in task.calibration_data) == round(0.2 * 36)
    code = _search(
        "--task", "imagefolder", "--model", "tests.own_task:RGBDigits", "--data", "images",
        "--resize", "32", "--crop", "32", "--mean", "0,0,0", "--std", "1,1,1", "--out", "out",
    )  # fmt: skip
    assert code in (0, 3), capsys.readouterr().err


def test_tensors_file_with_and_without_targets(tmp_path, capsys):
    split = digits_splits()["validation"]
    torch.save({"inputs": split.inputs, "targets": split.targets}, tmp_path / "labelled.pt")
    torch.save(split.inputs, tmp_path / "unlabelled.pt")
    labelled = build_task(TaskSpec(task="tensors", model="tests.own_task:mlp", data="labelled.pt"))
    assert labelled.metric.name == "top1"
    free = build_task(TaskSpec(task="tensors", model="tests.own_task:mlp", data="unlabelled.pt"))
    assert free.metric.name == "cosine" and free.label_free
    code = _search(
        "--task", "tensors", "--model", "tests.own_task:mlp", "--data", "unlabelled.pt",
        "--metric", "agreement", "--budget", "2pt", "--out", "out",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code in (0, 3) and "Label-free" in out


def _stores_are_empty(tmp_path) -> None:
    """No Optuna study and no MLflow run were written."""
    if (tmp_path / "studies.db").exists():
        with sqlite3.connect(tmp_path / "studies.db") as db:
            tables = {r[0] for r in db.execute("select name from sqlite_master")}
            if "studies" in tables:
                assert db.execute("select count(*) from studies").fetchone()[0] == 0
    if (tmp_path / "mlflow.db").exists():
        with sqlite3.connect(tmp_path / "mlflow.db") as db:
            tables = {r[0] for r in db.execute("select name from sqlite_master")}
            if "runs" in tables:
                assert db.execute("select count(*) from runs").fetchone()[0] == 0


BAD_INPUT = {
    "model fails on the first batch": (
        ["--task", "tensors", "--model", "tests.models:KeywordMLP", "--data", "unlabelled.pt"],
        "The model fails on the first batch of 'calibration_data', given a tensor of shape",
    ),
    "metric that is not a number": (
        ["--task", "tests.own_task:keyword_task", "--metric", "tests.own_task:text_metric"],
        "The metric 'text_metric' must return a number. Got str",
    ),
    "metric that returns NaN": (
        ["--task", "tests.own_task:keyword_task", "--metric", "tests.own_task:nan_metric"],
        "The metric 'nan_metric' returned NaN",
    ),
    "empty data set": (
        ["--task", "tensors", "--model", "tests.own_task:mlp", "--data", "empty.pt"],
        "The 'calibration_data' data is empty",
    ),
    "module:attr that does not exist": (
        ["--task", "tests.own_task:missing"],
        "'tests.own_task' has no attribute 'missing'",
    ),
    "module:attr that is not a task": (
        ["--task", "tests.own_task:not_a_task"],
        "must name an autoquant.Task or a function returning one. Got int instead.",
    ),
    "model factory that is not a model": (
        ["--model", "tests.own_task:digits_batches"],
        "must be a function of no arguments returning an nn.Module",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_exits_2_before_any_work(case, tmp_path, capsys):
    split = digits_splits()["validation"]
    torch.save(split.inputs, tmp_path / "unlabelled.pt")
    torch.save({"calibration": [], "validation": [split.inputs]}, tmp_path / "empty.pt")
    flags, message = BAD_INPUT[case]
    code = main(
        ["search", *flags, "--space", "quick", "--trials", "2", "--storage", "sqlite:///studies.db"]
        + ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    _stores_are_empty(tmp_path)


def test_a_model_mlflow_cannot_hold_still_gets_its_study_logged(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    flags = ["--task", "tests.own_task:keyword_task", "--space", "quick", "--trials", "3"]
    code = main(["search", *flags, "--storage", "sqlite:///studies.db", "--tracking-uri", uri])
    assert code in (0, 3)
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    parent = next(r for r in runs if r.data.tags.get(run_tag("role")) == "study")
    assert parent.info.status == "FINISHED"
    assert "ClassifierOutput" in parent.data.tags[run_tag("model_not_logged")]
    contexts = {t.value for i in parent.inputs.dataset_inputs for t in i.tags}
    assert contexts == {"calibration", "validation", "test"}


def test_inspect_and_recommend_take_the_users_task(capsys):
    assert main(["inspect", "--task", "tests.own_task:keyword_task"]) == 0
    out = capsys.readouterr().out
    assert "mlp.fc1" in out and "torch.export: FAILS" in out  # a dataclass output
    assert "left out: pt2e_static_int8: it needs torch.export" in out
    assert main(["recommend", "--task", "tests.own_task:keyword_task"]) == 0
    assert "dynamic_int8" in capsys.readouterr().out
