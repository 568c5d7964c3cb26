"""No lost trials: a killed process, a crashing or hanging trial, a NaN, out of memory."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mlflow
import pytest
import torch

from autoquant.engine.methods import get_method
from autoquant.study.run import GRACE_SECONDS, HEARTBEAT_SECONDS, search
from autoquant.study.space import parse_space
from autoquant.tasks import digits_task
from autoquant.tracking.record import run_tag
from tests.models import CrashingCNN

ROOT = Path(__file__).resolve().parents[2]
SPACE = parse_space(
    "methods: [fp32, static_int8, dynamic_int8]\nbackends: [x86, fbgemm]\n"
    "activation_observers: [minmax]\ncalibration_batches: [2]\n",
    name="reliability",
)


def quiet(**kwargs):
    return {"progress": False, "log": lambda _: None, "seed": 0, **kwargs}


@pytest.fixture
def broken_dynamic(monkeypatch):
    """Make dynamic_int8 misbehave in a chosen way for the length of a test."""
    method = get_method("dynamic_int8")

    def install(behaviour):
        monkeypatch.setattr(method, "quantize", behaviour)

    return install


def failures(rec):
    return [r.failure for r in rec.records if r.state == "failed"]


def test_nan_accuracy_is_a_failed_trial(cnn_task, broken_dynamic):
    class NaNModel(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan"))

    broken_dynamic(lambda model, config, **_: NaNModel())
    rec = search(cnn_task, "1pt", SPACE, n_trials=8, prune=False, **quiet())
    assert any("NaN" in f or "nan" in f for f in failures(rec))
    assert rec.feasible and rec.config.method != "dynamic_int8"


def test_out_of_memory_is_a_failed_trial(cnn_task, broken_dynamic):
    def exhausted(*args, **kwargs):
        raise MemoryError("cannot allocate 80 GiB")

    broken_dynamic(exhausted)
    rec = search(cnn_task, "1pt", SPACE, n_trials=8, **quiet())
    assert any(f.startswith("MemoryError: cannot allocate") for f in failures(rec))
    assert rec.counts["complete"] > 0


def test_hanging_trial_is_stopped_by_the_time_limit(cnn_task, broken_dynamic):
    hung_for = []

    def hang(*args, **kwargs):
        started = time.monotonic()
        try:
            time.sleep(60)
        finally:
            hung_for.append(time.monotonic() - started)

    broken_dynamic(hang)
    rec = search(cnn_task, "1pt", SPACE, n_trials=8, trial_timeout=3, **quiet())
    assert any("time limit of 3 s" in f for f in failures(rec))
    assert hung_for and max(hung_for) < 4  # each hang was cut at its 3 s, not allowed 60
    assert rec.counts["complete"] > 0


def test_isolated_crash_costs_one_trial_not_the_study(monkeypatch):
    monkeypatch.setenv("AUTOQUANT_TEST_CRASH", "1")
    task = digits_task(CrashingCNN(), model_name="crashing")
    space = parse_space(
        "methods: [static_int8]\nbackends: [x86, fbgemm]\n"
        "activation_observers: [minmax]\ncalibration_batches: [2]\n"
    )
    rec = search(task, "1pt", space, n_trials=4, isolate=True, warm_start="none", **quiet())
    crashed = [r for r in rec.records if r.state == "failed"]
    assert crashed and all(r.config.backend == "fbgemm" for r in crashed)
    assert all("worker process died (signal 11)" in r.failure for r in crashed)
    assert any(r.state == "complete" and r.config.backend == "x86" for r in rec.records)


def _slow_search(tmp_path, trials):
    return [
        sys.executable,
        "-m",
        "autoquant.cli",
        "search",
        "--model",
        "tests.models:SlowCNN",
        "--space",
        "quick",
        "--trials",
        str(trials),
        "--storage",
        f"sqlite:///{tmp_path}/s.db",
        "--study",
        "crash",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/mlflow.db",
        "--out",
        str(tmp_path / "out"),
    ]


def _trial_states(db: Path) -> dict[int, str]:
    try:
        return dict(sqlite3.connect(db).execute("select number, state from trials").fetchall())
    except sqlite3.OperationalError:
        return {}


def _beating_trials(db: Path) -> set[int]:
    """Running trials whose heartbeat the storage has recorded at least once."""
    try:
        rows = (
            sqlite3.connect(db)
            .execute(
                "select t.number from trials t join trial_heartbeats h on h.trial_id = t.trial_id "
                "where t.state = 'RUNNING'"
            )
            .fetchall()
        )
    except sqlite3.OperationalError:
        return set()
    return {n for (n,) in rows}


def test_sigkill_mid_trial_then_restart(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        _slow_search(tmp_path, 6),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = tmp_path / "s.db"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        states = _trial_states(db)
        # kill once a trial runs with its heartbeat recorded (Optuna fails stale trials by it)
        if list(states.values()).count("COMPLETE") >= 2 and _beating_trials(db):
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    before = _trial_states(db)
    killed = [n for n, s in before.items() if s == "RUNNING"]
    completed = {n for n, s in before.items() if s == "COMPLETE"}
    assert len(killed) == 1 and len(completed) >= 2

    time.sleep(GRACE_SECONDS + HEARTBEAT_SECONDS)  # the dead process's heartbeat goes stale

    def rerun():
        return subprocess.run(
            _slow_search(tmp_path, 6),
            cwd=tmp_path,
            env=env,
            text=True,
            capture_output=True,
            timeout=600,
        )

    restart = rerun()
    if restart.returncode != 0:
        # Was seen once in about six runs: a kill between a trial's metrics and its violation
        # crashed the restart's MLflow sync (fixed; test_tracking's killed-between-writes test).
        # Should it happen again: report it, and check that a second run still recovers.
        warnings.warn(
            f"first restart after SIGKILL failed:\n{restart.stderr[-3000:]}", stacklevel=1
        )
        restart = rerun()
    assert restart.returncode == 0, restart.stderr[-3000:]
    after = _trial_states(db)
    assert after[killed[0]] == "FAIL"
    assert completed <= {n for n, s in after.items() if s == "COMPLETE"}  # none lost
    assert len(after) == 6 and "RUNNING" not in after.values()

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("crash")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_trial = {
        int(r.data.tags[run_tag("trial")]): r for r in runs if run_tag("trial") in r.data.tags
    }
    assert sorted(by_trial) == list(range(6))  # every trial once, none repeated
    assert by_trial[killed[0]].info.status == "KILLED"
    assert by_trial[killed[0]].data.tags[run_tag("state")] == "killed"
    assert all(r.info.status != "RUNNING" for r in runs)


def test_isolation_refuses_a_task_that_cannot_be_pickled(mlp_task):
    import dataclasses

    from autoquant import ConfigError

    local = dataclasses.replace(mlp_task, output_fn=lambda out: out)
    with pytest.raises(ConfigError, match="cannot be pickled .*at module level"):
        search(local, "1pt", "quick", n_trials=1, isolate=True, **quiet())
