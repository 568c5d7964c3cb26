import dataclasses
import json
import sys

import pytest

from autoquant import Budget
from experiments import bench
from experiments.bench import Plan, run_benchmark, trials_to, write_report
from experiments.benchmark import main

TINY = Plan(
    models=("cnn_outliers",),
    scenarios=("bs1-t1",),
    budgets=("1pt",),
    seeds=(0,),
    trials=6,
    space="quick",
)


def test_trials_to_first_feasible_and_to_a_speedup():
    records = [
        {"number": 2, "feasible": True, "speedup": 1.4},
        {"number": 0, "feasible": False, "speedup": 2.0},
        {"number": 1, "feasible": True, "speedup": 0.9},
    ]
    assert trials_to(records) == 2  # trial 1 is the second trial and the first feasible
    assert trials_to(records, 1.3) == 3
    assert trials_to(records, 1.5) is None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return cache, run_benchmark(TINY, cache=cache, log=lambda _: None)


def test_benchmark_compares_search_sweep_recipes_and_float(tiny_run):
    cache, cells = tiny_run
    (cell,) = cells
    kinds = [row["kind"] for row in cell.rows]
    assert kinds[:3] == ["float", "recipe", "recipe"] and "sweep best" in kinds
    assert kinds[-1] == "autoquant"
    (sweep_file,) = (cache / "bench" / "sweeps").glob("cnn_outliers-*.json")
    sweep = json.loads(sweep_file.read_text())
    assert cell.sweep["configs"] == len(sweep) == len(bench.space_configs(TINY.search_space()))
    # the hard case: all-layer static int8 breaks the budget on the test split
    static = next(r for r in cell.rows if r["label"] == "static int8 x86 per-channel")
    assert static["drop"] > 1.0 and not static["within"]
    ours = cell.rows[-1]
    assert ours["within"] and ours["trials_to_feasible"] >= 1
    work = cell.searches[0]["work_seconds"]
    assert set(work) == {"trials", "sensitivity", "final_round"} and work["trials"] > 0
    # autoquant's own seconds: the search's wall time less the work, per study and per trial
    search = cell.searches[0]
    assert search["own_seconds"] == pytest.approx(search["wall_seconds"] - sum(work.values()))
    assert cell.checks["own_per_trial"] == pytest.approx(search["own_seconds"] / 6)
    # the validation drop's interval, and whether the test drop fell in it
    low, high = search["validation"]["ci_low"], search["validation"]["ci_high"]
    assert low <= search["validation"]["drop"] <= high
    assert ours["test_in_interval"] == (low <= ours["drop"] <= high)
    assert cell.checks["test_in_interval"] == (int(ours["test_in_interval"]), 1)
    assert cell.checks["budget_on_test"] is True
    # of the sweep's quantized configurations within budget on validation and within 95% of
    # its fastest (when that beat float), those within budget on test as well
    float_entry = next(e for e in sweep.values() if e["config"]["method"] == "fp32")
    quantized = [
        e
        for e in sweep.values()
        if "error" not in e
        and e["config"]["method"] != "fp32"
        and 100 * (float_entry["val_accuracy"] - e["val_accuracy"]) <= 1.0
    ]
    best = max((e["speedup"]["bs1-t1"] for e in quantized), default=0.0)
    near = [e for e in quantized if e["speedup"]["bs1-t1"] >= 0.95 * best] if best > 1 else []
    held = [e for e in near if 100 * (float_entry["test_accuracy"] - e["test_accuracy"]) <= 1.0]
    expected = (len(held), len(near)) if near else None
    assert cell.checks["near_best_on_test"] == expected


def test_holding_on_test_is_judged_against_float():
    budget = Budget.parse("0.25pt")
    assert bench._holds_on_test({"test_accuracy": 0.8976}, 0.9, budget)  # 0.24 points
    assert not bench._holds_on_test({"test_accuracy": 0.8963}, 0.9, budget)  # 0.37 points
    assert bench._holds_on_test({"test_accuracy": 0.8976}, 0.9, Budget.parse("0.3%"))


def test_a_rerun_reuses_the_cache(tiny_run, monkeypatch):
    cache, cells = tiny_run

    def no_work(*args, **kwargs):
        raise AssertionError("a cached piece was measured again")

    monkeypatch.setattr(sys.modules["autoquant.engine.apply"], "apply", no_work)
    monkeypatch.setattr(bench, "final_round", no_work)
    monkeypatch.setattr("autoquant.study.run.search", no_work)
    again = run_benchmark(TINY, cache=cache, log=lambda _: None)
    assert again[0].rows == cells[0].rows


def test_report_and_cli(tiny_run, tmp_path):
    cache, cells = tiny_run
    write_report(cells, TINY, tmp_path / "RESULTS.md", "python experiments/benchmark.py", 12.0)
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| cnn_outliers | bs1-t1 | 1pt |" in text
    assert "static int8 x86 per-channel" in text and "torch 2." in text
    # every piece records the code that measured it: this checkout's commit
    (commit,) = cells[0].commits
    assert commit == bench.source_commit() != "unrecorded"
    assert f"Measured by autoquant commits: {commit} (cnn_outliers)" in text
    assert "| trials run |" in text and "| sweep's near-best holding on test |" in text
    assert "| test drop in val. 95% CI | autoquant's own s per study (per trial) |" in text
    validation = cells[0].searches[0]["validation"]
    assert f"| {validation['drop']:.2f} ({validation['ci_low']:.2f} to " in text
    # a section another experiment wrote below the marker survives the report's rewrite
    extra = f"{bench.KEPT_SECTIONS}\n## Pretrained models\n\n| a table |\n"
    (tmp_path / "RESULTS.md").write_text(text + extra)
    write_report(cells, TINY, tmp_path / "RESULTS.md", "python experiments/benchmark.py", 12.0)
    again = (tmp_path / "RESULTS.md").read_text()
    assert again.endswith(extra) and again.count("| cnn_outliers | bs1-t1 | 1pt |") == 1
    code = main(
        [
            "--quick",
            "--models",
            "cnn_outliers",
            "--scenarios",
            "bs1-t1",
            "--budgets",
            "1pt",
            "--trials",
            "6",
            "--cache",
            str(cache),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    assert (tmp_path / "out" / "RESULTS.md").exists()
    assert (tmp_path / "out" / "RESULTS.png").stat().st_size > 10_000

    # --report-only measures nothing: what is cached is reported, the rest listed as missing
    code = main(
        ["--quick", "--report-only", "--models", "cnn_outliers", "mlp"]
        + ["--scenarios", "bs1-t1", "--budgets", "1pt", "--trials", "6"]
        + ["--cache", str(cache), "--out", str(tmp_path / "only"), "--report", "partial"]
    )
    assert code == 0
    text = (tmp_path / "only" / "partial.md").read_text()
    assert "| cnn_outliers | bs1-t1 | 1pt |" in text
    assert "## Not measured yet" in text and "- mlp: sweep of mlp" in text
    assert not (cache / "bench" / bench.space_tag(TINY.search_space()) / "mlp").exists()


def test_a_confidence_run_is_kept_apart_and_judges_the_upper_bound(tiny_run, tmp_path):
    cache, cells = tiny_run
    sure = dataclasses.replace(TINY, confidence=0.9)
    (cell,) = run_benchmark(sure, cache=cache, log=lambda _: None)
    folder = cache / "bench" / bench.space_tag(TINY.search_space()) / "cnn_outliers"
    assert (folder / "search-bs1-t1-1pt-s0-c0.9.json").exists()
    assert (folder / "search-bs1-t1-1pt-s0.json").exists()  # the plain run's, untouched
    validation = cell.searches[0]["validation"]
    # judged by the upper 90 % bound: within the budget only if that bound is (float chosen
    # without a trial of its own has no trial measurement, and changes nothing)
    if cell.searches[0]["config"]["method"] != "fp32":
        assert validation["upper"] is not None
        assert (validation["upper"] <= 1.0) == cell.searches[0]["feasible"]
    write_report([cell], sure, tmp_path / "R.md", "python experiments/benchmark.py", 1.0)
    assert "Confidence mode 0.9: a search's configuration is within the budget" in (
        (tmp_path / "R.md").read_text()
    )
