"""Every bad input of the README's table is refused before work starts, naming problem and fix."""

import pytest
import torch

from autoquant import ConfigError, DataError
from autoquant.cli import main
from autoquant.engine.budget import Budget
from autoquant.report.tables import recommendation_markdown
from autoquant.study.experiment import TaskSpec, build_task, load_checkpoint, load_experiment
from autoquant.study.run import make_storage, search
from autoquant.study.space import parse_space
from autoquant.tasks import digits_task
from autoquant.tasks.zoo import build_zoo_model
from autoquant.tracking.tracker import MlflowTracker


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_missing_checkpoint():
    with pytest.raises(ConfigError, match="The checkpoint 'nowhere.pt' does not exist"):
        load_checkpoint(build_zoo_model("mlp"), "nowhere.pt")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"not a torch file at all")
    with pytest.raises(ConfigError, match="cannot be read \\(corrupt or not a torch file\\)"):
        load_checkpoint(build_zoo_model("mlp"), path)


def test_checkpoint_that_needs_unpickling_code_is_refused(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(build_zoo_model("mlp"), path)  # the whole module, not a state_dict
    with pytest.raises(ConfigError) as err:
        load_checkpoint(build_zoo_model("mlp"), path)
    message = str(err.value)
    assert "weights_only=True" in message and "torch.save(model.state_dict(), path)" in message
    assert "module:factory" in message  # how to opt in: load it in your own factory


def test_checkpoint_that_does_not_fit_the_model(tmp_path):
    path = tmp_path / "cnn.pt"
    torch.save(build_zoo_model("cnn").state_dict(), path)
    with pytest.raises(ConfigError, match="does not fit the model"):
        load_checkpoint(build_zoo_model("mlp"), path)


def test_good_checkpoint_loads_through_the_experiment(tmp_path):
    path = tmp_path / "mlp.pt"
    trained = digits_task("mlp").model
    torch.save(trained.state_dict(), path)
    task = build_task(TaskSpec(model="mlp", checkpoint=str(path)))
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            task.model.state_dict().values(), trained.state_dict().values(), strict=True
        )
    )


def test_experiment_file_unknown_key_and_wrong_type(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("model: mlp\nbudgett: 1pt\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['budgett'\]"):
        load_experiment(path)
    path.write_text("model: mlp\ntrials: many\n")
    with pytest.raises(
        ConfigError, match="e.yaml: The 'trials' key must be an int >= 1. Got 'many'"
    ):
        load_experiment(path)


def test_yaml_python_tags_are_refused(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_experiment(path)


def test_budget_out_of_range():
    with pytest.raises(ConfigError, match="'max_drop' parameter of Budget must be a float in"):
        Budget.parse("150pt")


def test_study_with_other_settings_is_refused_or_forced_new(tmp_path, capsys):
    common = [
        "search",
        "--model",
        "mlp",
        "--space",
        "quick",
        "--trials",
        "1",
        "--no-tracking",
        "--storage",
        f"sqlite:///{tmp_path}/s.db",
        "--study",
        "exp",
    ]
    assert main(common) == 0
    assert main([*common, "--budget", "2pt"]) == 2
    assert "was started with a different ['budget']" in capsys.readouterr().err
    assert main([*common, "--budget", "2pt", "--force-new"]) == 0
    assert "starting a new one, 'exp-2'" in capsys.readouterr().out


def test_unreachable_storage_names_the_url_without_the_password():
    with pytest.raises(ConfigError) as err:
        make_storage("postgresql+psycopg2://bob:secret@127.0.0.1:9/studies")
    message = str(err.value)
    assert "postgresql+psycopg2://bob:***@127.0.0.1:9/studies cannot be opened" in message
    assert "secret" not in message
    with pytest.raises(ConfigError, match="must be a database URL"):
        make_storage("studies.db")


def test_unreachable_tracking_server():
    with pytest.raises(ConfigError, match="'http://127.0.0.1:9' cannot be reached"):
        MlflowTracker("http://127.0.0.1:9")


def test_calibration_set_smaller_than_the_space_asks_is_used_and_noted(cnn_task):
    import dataclasses

    short = dataclasses.replace(cnn_task, calibration_data=cnn_task.calibration_data[:3])
    space = parse_space("methods: [static_int8]\ncalibration_batches: [4, 8]\n")
    said = []
    rec = search(short, "1pt", space, n_trials=2, progress=False, log=said.append)
    note = "The space asks for 8 calibration batches and the data has 3: the observers saw all 3."
    # (a busy machine adds its own note, which this test does not judge)
    notes = [n for n in rec.notes if "competed for the cores" not in n]
    assert notes == [note] and f"warning: {note}" in said
    assert rec.records[0].state == "complete"  # calibrated on the 3 batches there are
    assert f"- {note}" in recommendation_markdown(rec, [])


def test_model_output_that_does_not_fit_the_metric(cnn_task):
    import dataclasses

    wrong = dataclasses.replace(
        cnn_task, model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    )
    wrong.model.eval()

    def f1_for_ten_classes(outputs, targets):
        return float((torch.nn.functional.one_hot(outputs.argmax(1), 10) > 0).float().mean()) * 20

    wrong = dataclasses.replace(wrong, metric=f1_for_ten_classes)
    with pytest.raises(DataError, match="score in \\[0, 1\\]"):
        search(wrong, "1pt", "quick", n_trials=1, progress=False, log=lambda _: None)


def test_user_code_is_imported_only_when_named(capsys):
    assert main(["search", "--model", "no_such_module:build", "--no-tracking"]) == 2
    assert "Cannot import 'no_such_module'" in capsys.readouterr().err
    assert main(["search", "--model", "tests.models:Missing", "--no-tracking"]) == 2
    assert "has no attribute 'Missing'" in capsys.readouterr().err


def test_a_negative_timeout_is_refused_before_any_work(capsys):
    code = main(["search", "--model", "mlp", "--timeout=-5", "--no-tracking", "--storage", ""])
    assert code == 2
    assert "--timeout must be a float in (0.0, inf]. Got -5" in (capsys.readouterr().err)


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("autoquant 0.")
