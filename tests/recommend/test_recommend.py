"""The Recommendation a Python user gets: saved to a folder just as the CLI saves it."""

import json

import torch

from autoquant import load, search


def test_save_writes_the_model_report_plots_and_config(mlp_task, tmp_path):
    rec = search(mlp_task, "1pt", "quick", n_trials=3, seed=0, progress=False, log=lambda _: None)
    paths = rec.save(tmp_path / "out")
    names = {path.name for path in paths.values()}
    assert {"model.pt", "state_dict.pt", "config.json", "report.md", "history.png"} <= names
    assert all(path.exists() for path in paths.values())
    info = json.loads(paths["config"].read_text())
    assert info["config"] == rec.config.to_dict() and info["explanation"] == rec.explanation
    assert info["feasible"] == rec.feasible and info["study"] == rec.study_name
    x = mlp_task.test_data[0][0]
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "out")(x), rec.model(x))
    assert rec.summary()["label"] == rec.config.label()
    assert set(rec.save(tmp_path / "bare", plots=False)) == {
        "model",
        "state_dict",
        "config",
        "report",
    }
