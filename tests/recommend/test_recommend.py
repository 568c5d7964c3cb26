"""The Recommendation: how the final choice is made, and saved to a folder as the CLI saves it."""

import dataclasses
import json
import random
import statistics

import torch

from autoquant import QuantConfig, load, search
from autoquant.measure import Metrics
from autoquant.measure.latency import Timing
from autoquant.recommend.recommendation import (
    _rank,
    _safer_than_fastest,
    faster_than_baseline,
    shortlist,
)
from autoquant.tracking.record import TrialRecord


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
    assert rec.config.method == "fp32"  # which exports to ONNX: model.onnx beside it
    assert "ONNX: `model.onnx` (largest output difference" in paths["report"].read_text()
    assert set(rec.save(tmp_path / "bare", plots=False)) == {
        "model",
        "onnx",
        "state_dict",
        "config",
        "report",
    }


def _record(number, method, speedup, size_ratio, flips=0, interval=None):
    """A complete trial record; ``interval`` is its speedup's (low, high), None for none."""
    metrics = Metrics(
        0.97, 0.97, 0.0, 0.0, 1 / speedup, 0.0, 1.0, speedup, 100, 400, size_ratio, "bs1-t1"
    )
    low, high = interval or (None, None)
    metrics = dataclasses.replace(metrics, flips=flips, speedup_ci_low=low, speedup_ci_high=high)
    return TrialRecord(number, "complete", QuantConfig(method=method), metrics, -1.0)


def test_without_intervals_ties_go_to_the_smaller_then_simpler_then_faster():
    records = [
        _record(0, "static_int8", 4.72, 0.25),
        _record(1, "static_int8", 4.76, 0.25),
        _record(2, "qat_int8", 4.83, 0.25),
        _record(3, "static_int8", 3.0, 0.25),
    ]
    ranked = _rank(records, "latency")
    assert [r.number for r in ranked] == [1, 0, 2, 3]  # 4.72-4.83 are within 3%: static first


def test_without_intervals_ties_go_first_to_the_one_that_changes_fewest_answers():
    records = [
        _record(0, "static_int8", 4.80, 0.25, flips=3),
        _record(1, "static_int8", 4.70, 0.30, flips=1),  # within 3%, larger, safer
        _record(2, "static_int8", 4.00, 0.25, flips=0),  # safest, but not within the noise
    ]
    ranked = _rank(records, "latency")
    assert [r.number for r in ranked] == [1, 0, 2]
    why = _safer_than_fastest(ranked, "latency")
    assert "Trial 0" in why and "4.80x within the 3% timing noise" in why
    assert "(1 against 3)" in why
    # the fastest is also the safest: nothing to explain
    assert _safer_than_fastest(_rank(records[1:], "latency"), "latency") == ""
    # flips decide only where every tied trial has a count (one measured before flips were
    # counted has none): then size decides, as it did before
    unknown = [_record(0, "static_int8", 4.80, 0.25, flips=None), records[1]]
    ranked = _rank(unknown, "latency")
    assert [r.number for r in ranked] == [0, 1]
    assert _safer_than_fastest(ranked, "latency") == ""


def test_ties_are_judged_on_the_spread_the_timing_measured():
    # a steady timing tells 2 % apart: the faster wins though the other changes fewer answers
    steady = [
        _record(0, "static_int8", 4.80, 0.25, flips=3, interval=(4.77, 4.83)),
        _record(1, "static_int8", 4.70, 0.25, flips=1, interval=(4.67, 4.73)),
    ]
    assert [r.number for r in _rank(steady, "latency")] == [0, 1]
    # a noisy one cannot tell 8 % apart: the one that changes fewer answers wins, and says why
    noisy = [
        _record(0, "static_int8", 4.80, 0.25, flips=3, interval=(4.50, 5.10)),
        _record(1, "static_int8", 4.40, 0.25, flips=1, interval=(4.20, 4.60)),
    ]
    ranked = _rank(noisy, "latency")
    assert [r.number for r in ranked] == [1, 0]
    why = _safer_than_fastest(ranked, "latency")
    assert "(95 % CI 4.50-5.10x), which overlaps this one's (95 % CI 4.20-4.60x)" in why


def test_faster_than_float_means_the_whole_interval_lies_above_one():
    def faster(speedup, interval=None):
        return faster_than_baseline(_record(0, "static_int8", speedup, 0.25, 0, interval).metrics)

    assert faster(1.10, (1.02, 1.18)) and not faster(1.10, (0.97, 1.25))
    assert faster(1.01) and not faster(0.99)  # without an interval: the speedup alone


def test_trials_within_a_trials_noise_of_the_fastest_also_reach_the_final_round():
    speeds = [2.78, 2.77, 2.69, 2.63, 2.60, 2.55, 2.52, 1.80]
    records = [_record(i, "static_int8", s, 0.25) for i, s in enumerate(speeds)]
    # 2.60 and 2.55 are within 10% of 2.78: they go too; 2.52 is, but past the cap of 6
    assert [r.number for r in shortlist(records, "latency")] == [0, 1, 2, 3, 4, 5]
    assert [r.number for r in shortlist(records[:4] + records[7:], "latency")] == [0, 1, 2, 3]
    assert len(shortlist(records, "size")) == 4


def _timed_at(speedup: float, jitter: float):
    """A stand-in for the interleaved timer: float's 12 rounds vary by 20 %; every other model
    runs ``speedup`` times faster, each round off by up to ``jitter`` of its own."""

    def timed(models, example, threads, **plan):
        draw = random.Random(0)
        base = [1.0 + 0.2 * draw.random() for _ in range(12)]
        timings = {}
        for name in models:
            if name in ("float", "compiled float"):
                samples = base
            else:
                samples = [b / speedup * (1 + jitter * (draw.random() - 0.5)) for b in base]
            quartiles = statistics.quantiles(samples, n=4)
            timings[name] = Timing(
                statistics.median(samples), quartiles[2] - quartiles[0], tuple(samples)
            )
        return timings

    return timed


def test_float_is_recommended_when_no_candidate_is_faster_beyond_the_noise(mlp_task, monkeypatch):
    # every candidate 4 % faster than float in the median, but the rounds spread 40 %
    monkeypatch.setattr("autoquant.measure.compare.measure_latency", _timed_at(1.04, 0.4))
    rec = search(mlp_task, "1pt", "quick", n_trials=3, seed=0, progress=False, log=lambda _: 0)
    assert rec.config == QuantConfig(method="fp32")
    timed = [f.metrics for f in rec.finalists[1:] if f.metrics is not None]
    # some ran above 1x in the median (the speedup alone would have picked one); no interval
    # lay above 1
    assert max(m.speedup for m in timed) > 1 and all(m.speedup_ci_low <= 1 for m in timed)
    assert "No quantized configuration was faster than float beyond the timing noise" in (
        rec.explanation
    )
    # the same median speedup with a steady timing is beyond the noise: a quantized model wins
    monkeypatch.setattr("autoquant.measure.compare.measure_latency", _timed_at(1.04, 0.01))
    rec = search(mlp_task, "1pt", "quick", n_trials=3, seed=0, progress=False, log=lambda _: 0)
    assert rec.config.method != "fp32" and rec.metrics.speedup_ci_low is not None
    assert "beyond the timing noise" not in rec.explanation
