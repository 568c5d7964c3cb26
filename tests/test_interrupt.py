"""Ctrl-C at every stage of a search: exit 130 within seconds, say what was kept and how to go
on, leave no thread running, and the same command then goes on from there.

The interrupt is sent by the search itself when it enters the stage (tests/interrupt_stage.py),
so where it lands does not depend on the machine's speed.
"""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from autoquant.study.run import INTERRUPTED, _stop_heartbeats, make_storage

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 6


def _command(tmp_path: Path) -> list[str]:
    return [
        "search", "--model", "mlp", "--space", "default", "--trials", str(TRIALS),
        "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--study", "s",
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--out", str(tmp_path / "out"),
    ]  # fmt: skip


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip


def _finished(tmp_path: Path) -> dict[int, str]:
    rows = (
        sqlite3.connect(tmp_path / "study.db")
        .execute("select number, state from trials where state in ('COMPLETE','PRUNED','FAIL')")
        .fetchall()
    )
    return dict(rows)


@pytest.mark.parametrize(
    ("stage", "said"),
    [
        ("sensitivity", "interrupted before the first trial; run the same command again to start"),
        ("trial", "The finished trials are kept in sqlite:"),
        ("final", "interrupted in the final round. Every trial is kept in sqlite:"),
    ],
)
def test_ctrl_c_at_each_stage_stops_cleanly_and_the_same_command_goes_on(tmp_path, stage, said):
    interrupted = _run(tmp_path, "tests.interrupt_stage", stage, *_command(tmp_path))
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    assert said in interrupted.stderr
    assert "LEFT:" not in interrupted.stderr  # no thread would keep the process alive
    before = _finished(tmp_path) if (tmp_path / "study.db").exists() else {}
    if stage == "trial":
        # the first two are kept; the third, stopped, is recorded as such and runs again
        assert list(before.values()) == ["COMPLETE", "COMPLETE", "FAIL"]
        study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
        assert study.trials[2].user_attrs["failure"] == INTERRUPTED
    if stage == "final":
        assert len(before) == TRIALS

    again = _run(tmp_path, "autoquant.cli", *_command(tmp_path))
    assert again.returncode in (0, 3), again.stderr[-2000:]
    after = _finished(tmp_path)
    assert len(after) >= TRIALS + (stage == "trial")  # the stopped trial does not count
    assert all(after[number] == state for number, state in before.items())  # nothing redone
    if stage == "final":
        assert f"{TRIALS} trial(s) done, 0 to run" in again.stdout


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_a_heartbeat_left_beating_is_stopped(tmp_path):
    storage = make_storage(f"sqlite:///{tmp_path / 'h.db'}")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    # what a Ctrl-C landing while Optuna starts a trial's heartbeat leaves: a thread started,
    # never stopped
    beat = optuna.storages._heartbeat.get_heartbeat_thread(trial._trial_id, study._storage)
    beat.start()
    other = optuna.create_study(storage=storage)
    _stop_heartbeats(other)  # another study's trials are left alone
    assert beat._thread.is_alive()
    _stop_heartbeats(study)
    assert not beat._thread.is_alive()


def test_trials_the_user_stopped_do_not_count_as_a_failing_method():
    from autoquant import QuantConfig
    from autoquant.study.run import Objective

    config = QuantConfig(method="dynamic_int8", backend="x86")
    study = optuna.create_study()
    for failure in (INTERRUPTED, INTERRUPTED):
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL,
                user_attrs={"config": config.to_dict(), "failure": failure},
            )
        )
    Objective._skip_if_failing_the_same_way(None, study.ask(), config)  # not skipped
    for _ in range(2):
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL,
                user_attrs={"config": config.to_dict(), "failure": "RuntimeError: boom"},
            )
        )
    with pytest.raises(optuna.TrialPruned, match="failed 2 times"):
        Objective._skip_if_failing_the_same_way(None, study.ask(), config)
