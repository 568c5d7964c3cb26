"""A busy machine is detected: other work competing for the cores is measured and said."""

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoquant import search
from autoquant.measure.latency import measure_latency
from autoquant.measure.machine import (
    BUSY_WAIT_SHARE,
    busy_warning,
    conditions_text,
    is_busy,
    usable_cores,
)
from autoquant.tracking.record import run_tag
from autoquant.tracking.tracker import MlflowTracker

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/schedstat").exists(), reason="needs Linux's scheduler statistics"
)


@contextlib.contextmanager
def competing():
    """Two spinning processes per usable core: work that competes for every core."""
    spinners = [
        subprocess.Popen(
            [sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
            stdout=subprocess.PIPE,
        )
        for _ in range(2 * usable_cores())
    ]
    for spinner in spinners:  # started, not still loading Python, before anything is timed
        spinner.stdout.readline()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
            spinner.stdout.close()


def test_a_timing_beside_competing_work_is_flagged(mlp_task):
    x = mlp_task.validation_data[0][0][:1]
    with competing():
        timings = measure_latency({"float": mlp_task.model}, x, 1, budget_s=0.5)
    waited = timings["float"].waited_share
    # the spinners take two of every three time slices of a core: far beyond idle (about 1 %)
    assert waited > 3 * BUSY_WAIT_SHARE and is_busy(waited)
    warning = busy_warning(1, waited, 4.0)
    assert f"waited {waited:.0%} of the time for a core (load average 4.0 on" in warning
    assert not is_busy(None) and busy_warning(1, None, 4.0) == ""
    text = conditions_text(2, 0.01, 0.5)
    capability = torch.backends.cpu.get_cpu_capability()
    assert f"({capability} kernels), {usable_cores()} cores, 2 threads, load average 0.5" in text


def test_a_search_on_a_busy_machine_says_its_speedups_are_unreliable(mlp_task, tmp_path):
    said = []
    tracker = MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")
    with competing():
        rec = search(
            mlp_task,
            "1pt",
            "quick",
            n_trials=2,
            seed=0,
            progress=False,
            log=said.append,
            tracker=tracker,
        )
    # said once, at the first trial timed so, not at every one
    busy = [line for line in said if "Other work competed for the cores" in line]
    assert len(busy) == 1 and busy[0].startswith("warning: trial 0: ")
    # every trial and the final round (timed twice) ran beside the spinners
    assert all(r.metrics.timed_busy for r in rec.records if r.metrics)
    assert not rec.timing_reliable
    assert "Warning (final round): Other work competed for the cores" in rec.explanation
    assert any("2 of 2 trials were timed while other work competed" in n for n in rec.notes)
    assert "threads waited" in rec.timing_conditions
    assert rec.summary()["timing_reliable"] is False
    # and in MLflow: the warning and the conditions on the study's run, a flag on each trial's
    experiment = tracker.client.get_experiment_by_name(rec.study_name)
    runs = tracker.client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get(run_tag("role")) == "study")
    assert parent.data.tags[run_tag("busy")] == rec.timing_warning
    assert parent.data.tags[run_tag("timing")] == rec.timing_conditions
    trials = [r for r in runs if r.data.tags.get(run_tag("role")) == "trial"]
    assert trials and all(r.data.tags[run_tag("busy")] == "true" for r in trials)
    assert all(r.data.metrics["cpu_wait_share"] > BUSY_WAIT_SHARE for r in trials)
