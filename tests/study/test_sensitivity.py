import torch

from autoquant.study.sensitivity import cached_sensitivity, measure_sensitivity, model_fingerprint
from autoquant.tasks import digits_task
from tests.models import OutlierMLP


def test_the_layer_with_outliers_is_the_most_sensitive():
    task = digits_task(OutlierMLP(), model_name="outlier")
    ranked = measure_sensitivity(task)
    assert {r.name for r in ranked} == {"fc1", "fc2", "fc3"}
    # fc1 writes and fc2 reads the activation with the 1e5 outlier: int8 there destroys it
    assert {r.name for r in ranked[:2]} == {"fc1", "fc2"}
    assert min(r.drop_points for r in ranked[:2]) > 50
    assert ranked[-1].name == "fc3" and ranked[-1].drop_points < 5
    assert ranked[0].sqnr_db < ranked[-1].sqnr_db


def test_sensitivity_is_cached_per_model(monkeypatch, tmp_path, cnn_task):
    monkeypatch.setenv("AUTOQUANT_CACHE", str(tmp_path))
    logs = []
    first = cached_sensitivity(cnn_task, log=logs.append)
    assert len(logs) == 1 and list((tmp_path / "sensitivity").glob("*.json"))
    import autoquant.study.sensitivity as module

    monkeypatch.setattr(module, "measure_sensitivity", lambda *a, **k: 1 / 0)
    again = cached_sensitivity(cnn_task, log=logs.append)
    assert again == first and len(logs) == 1  # read back, not measured


def test_fingerprint_changes_with_the_weights(cnn_task):
    model = digits_task("cnn").model
    before = model_fingerprint(model)
    assert model_fingerprint(cnn_task.model) == before
    with torch.no_grad():
        model.fc.bias += 1
    assert model_fingerprint(model) != before
