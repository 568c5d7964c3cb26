"""The MLflow UI started by autoquant, opened in headless Chromium: the trial runs are listed."""

import os
import shutil

import pytest

from autoquant.cli import main
from autoquant.study.run import search
from autoquant.tracking.tracker import MlflowTracker, studies
from autoquant.tracking.ui import start

CHROMIUM = shutil.which("chromium")
# CI installs Debian's chromium (.ci/run); elsewhere the test says what is missing.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs Debian's chromium: apt-get install -y chromium",
)


def test_runs_page_lists_the_trials(tmp_path, cnn_task):
    from playwright.sync_api import sync_playwright

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    search(
        cnn_task,
        "1pt",
        "quick",
        n_trials=3,
        study_name="ui-study",
        progress=False,
        log=lambda _: None,
        tracker=MlflowTracker(uri),
    )
    experiment_id = studies(uri)[0]["experiment_id"]
    process, address = start(uri)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM or "/usr/bin/chromium",
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{address}/#/experiments/{experiment_id}/runs")
            page.wait_for_selector("text=4 matching runs", timeout=90_000)
            # Trial runs are nested under the study's parent run: expand it.
            page.locator("button[data-component-id$='runnamecellrenderer.tsx_46']").first.click()
            page.wait_for_selector("text=t002", timeout=30_000)
            page.screenshot(path=str(tmp_path / "runs.png"))
            lines = page.inner_text("body").splitlines()
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    trials = sorted(line.split()[0] for line in lines if line[:2] == "t0")
    assert trials == ["t000", "t001", "t002"]
    assert "ui-study" in " ".join(lines)
    assert (tmp_path / "runs.png").stat().st_size > 20_000


def test_runs_command_prints_studies(tmp_path, cnn_task, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rec = search(
        cnn_task,
        "1pt",
        "quick",
        n_trials=2,
        study_name="listed",
        progress=False,
        log=lambda _: None,
        tracker=MlflowTracker(uri),
    )
    assert main(["runs", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "listed" in out and rec.config.label() in out and "FINISHED" in out
