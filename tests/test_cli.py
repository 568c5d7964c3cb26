import pytest

from autoquant.cli import main


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    # The CLI writes mlflow.db, autoquant.db and autoquant-out/ into the working directory.
    monkeypatch.chdir(tmp_path)


def test_methods_prints_the_capability_table(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "static_int8" in out and "histogram" in out and "qnnpack" in out
    assert "linear_prepack_fp16" in out


def test_demo_prints_the_measurement_table(capsys):
    assert main(["demo", "--model", "mlp"]) == 0
    out = capsys.readouterr().out
    for column in ("accuracy", "drop (pt)", "speedup", "size ratio"):
        assert column in out
    for label in ("float (fp32)", "quantize_dynamic Linear qint8", "static int8 x86 per-channel"):
        assert label in out
    assert "failed" not in out


def test_bad_model_name_is_a_usage_error(capsys):
    assert main(["demo", "--model", "vgg"]) == 2
    assert "The 'model' setting must be a zoo model" in capsys.readouterr().err


import json  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from autoquant.engine.export import load  # noqa: E402
from autoquant.tasks import digits_task  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_search_exit_0_and_outputs(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "search",
            "--model",
            "mlp",
            "--space",
            "quick",
            "--trials",
            "3",
            "--storage",
            f"sqlite:///{tmp_path}/a.db",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Recommended:" in printed
    assert "quantize_dynamic Linear qint8" in printed and "static int8 x86 per-channel" in printed
    expected = {"model.pt", "state_dict.pt", "config.json", "report.md", "drop_vs_speedup.png"}
    assert expected <= {p.name for p in out.iterdir()}
    info = json.loads((out / "config.json").read_text())
    assert info["feasible"] is True and "config" in info and "layer_map" in info
    assert "## Trials" in (out / "report.md").read_text()
    # the saved TorchScript gives the recommendation's outputs
    task = digits_task("mlp")
    from autoquant import QuantConfig, apply

    rebuilt = apply(task.model, QuantConfig.from_dict(info["config"]), task.calibration_data)
    x = task.test_data[0][0]
    with torch.no_grad():
        assert torch.equal(load(out)(x), rebuilt(x))


def test_search_exit_3_when_no_configuration_meets_the_budget(tmp_path, capsys):
    space = tmp_path / "int8.yaml"
    space.write_text("methods: [static_int8]\nbackends: [x86]\ncalibration_batches: [2]\n")
    code = main(
        [
            "search",
            "--model",
            "tests.models:OutlierMLP",
            "--space",
            str(space),
            "--trials",
            "2",
            "--storage",
            f"sqlite:///{tmp_path}/b.db",
            "--out",
            str(tmp_path / "out"),
            "--json",
        ]
    )
    assert code == 3
    captured = capsys.readouterr()
    assert "No configuration met the budget" in captured.err  # with --json, lines go to stderr
    result = json.loads(captured.out)
    assert result["feasible"] is False and "budget" in result["explanation"]
    assert result["files"]["model"] == str(tmp_path / "out" / "model.pt")
    assert (tmp_path / "out" / "model.pt").exists()  # the best effort is saved


def test_search_exit_2_on_usage_errors(tmp_path, capsys):
    assert main(["search", "--budget", "lots", "--model", "mlp"]) == 2
    assert "'budget' parameter must be a drop like '1pt'" in capsys.readouterr().err
    bad = tmp_path / "exp.yaml"
    bad.write_text("model: mlp\ntrails: 4\n")
    assert main(["search", str(bad)]) == 2
    assert "unknown key(s) ['trails']" in capsys.readouterr().err


def test_experiment_file_and_flag_override(tmp_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"model: mlp\nspace: quick\ntrials: 2\nstorage: sqlite:///{tmp_path}/c.db\n"
        f"study: from-file\nout: {tmp_path}/out\n"
    )
    assert main(["search", str(exp), "--trials", "3"]) == 0
    db = sqlite3.connect(tmp_path / "c.db")
    assert db.execute("select count(*) from trials").fetchone()[0] == 3


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("autoquant ")


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--model", "vgg"],
        ["search", "--model", "mlp", "--budget", "lots"],
        ["inspect", "--model", "vgg"],
        ["recommend", "mlp", "--scenario", "bs0-t1"],
        ["worker", "--storage", "sqlite:////nonexistent/folder/o.db", "--study", "s"],
        ["runs", "--tracking-uri", "sqlite:////nonexistent/folder/mlflow.db"],
        ["ui", "--tracking-uri", "sqlite:////nonexistent/folder/mlflow.db"],
    ],
    ids=lambda argv: argv[0],
)
def test_every_verb_exits_2_on_bad_input_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("autoquant: error: ") and "Traceback" not in err


def test_two_different_models_are_refused(capsys):
    assert main(["inspect", "mlp", "--model", "cnn"]) == 2
    assert "Two models were given" in capsys.readouterr().err


def test_json_output_parses_and_quiet_prints_one_line(capsys, tmp_path):
    assert main(["inspect", "--model", "mlp", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout holds the JSON alone
    assert report["model"] == "mlp" and [layer["name"] for layer in report["layers"]]
    assert "quantizable layers" in captured.err  # the human lines went to stderr

    assert main(["recommend", "--model", "mlp", "--json"]) == 0
    suggestion = json.loads(capsys.readouterr().out)
    assert suggestion["suggestion"]["label"] and suggestion["estimates"]

    uri = f"sqlite:///{tmp_path}/empty.db"
    assert main(["runs", "--tracking-uri", uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    assert main(["inspect", "mlp", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == ["mlp: 3 quantizable layers"]


def test_an_unexpected_error_is_one_line_and_a_traceback_file(monkeypatch, capsys):
    import autoquant.cli

    def broken(args):
        raise RuntimeError("a failure autoquant did not expect")

    monkeypatch.setattr(autoquant.cli, "cmd_methods", broken)
    assert main(["methods"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "autoquant: unexpected error: RuntimeError: a failure autoquant did not expect"
    traceback_file = Path(err[1].split(" is in ")[1].split(";")[0])
    assert "Traceback" in traceback_file.read_text() and "broken" in traceback_file.read_text()
    with pytest.raises(RuntimeError, match="did not expect"):
        main(["methods", "--debug"])


def test_quiet_search_prints_one_line_even_on_a_new_mlflow_store(tmp_path):
    # MLflow logs INFO lines when it creates its database; --quiet holds them back
    command = [
        sys.executable, "-m", "autoquant.cli", "search", "--model", "mlp", "--space", "quick",
        "--trials", "2", "--storage", "", "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
        "--out", str(tmp_path / "out"), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    assert len(lines) == 1 and "saved to" in lines[0], lines
