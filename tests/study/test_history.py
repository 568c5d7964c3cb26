"""The ranker learned from past studies: on a synthetic history, and read from a real store."""

import pytest
from optuna.trial import TrialState

from autoquant import QuantConfig
from autoquant.cli import main
from autoquant.engine.budget import Budget
from autoquant.study.history import (
    Example,
    HistoryRanker,
    alternate,
    history_candidates,
    load_history,
    space_configs,
)
from autoquant.study.run import HISTORY_PICKS, open_search, search
from autoquant.study.space import load_space
from autoquant.tracking.tracker import MlflowTracker

CONV = {"conv_share": 1.0, "linear_share": 0.0, "log_macs": 16.0}
DENSE = {"conv_share": 0.0, "linear_share": 1.0, "log_macs": 11.0}


def synthetic_truth(features, config):
    """Convs love static int8 except on qnnpack, which ruins them; dense models want dynamic."""
    conv = features["conv_share"] > 0.5
    if config.method == "static_int8":
        speed = 3.0 if conv else 0.5
        drop = 20.0 if conv and config.backend == "qnnpack" else 0.2
    elif config.method == "dynamic_int8":
        speed, drop = (1.0, 0.1) if conv else (1.3, 0.3)
    else:
        speed, drop = 1.0, 0.0
    return drop, speed


def synthetic_history():
    examples = []
    configs = space_configs(load_space("default"))
    for name, features in (("conv-a", CONV), ("dense-a", DENSE)):
        for config in configs[::3]:
            drop, speed = synthetic_truth(features, config)
            examples.append(Example(name, features, config, drop, speed, "bs1-t1"))
    return examples


def test_ranker_learns_what_suits_each_kind_of_model():
    ranker = HistoryRanker(synthetic_history())
    assert ranker.studies == ["conv-a", "dense-a"]
    candidates = space_configs(load_space("default"))
    top_conv = ranker.rank(CONV, candidates, Budget(1.0))
    assert all(c.method == "static_int8" and c.backend != "qnnpack" for c, _, _ in top_conv)
    assert all(d < 1.0 and s > 2.0 for _, d, s in top_conv)
    top_dense = ranker.rank(DENSE, candidates, Budget(1.0))
    assert top_dense[0][0].method == "dynamic_int8"


def test_too_little_history_is_refused():
    with pytest.raises(ValueError, match="at least 5 past trials"):
        HistoryRanker(synthetic_history()[:3])


def test_space_configs_are_distinct_and_canonical():
    configs = space_configs(load_space("default"))
    assert len({c.to_json() for c in configs}) == len(configs)
    assert QuantConfig(method="fp32") in configs
    assert all(c == c.canonical() for c in configs)


def test_ranker_picks_one_configuration_per_family():
    ranker = HistoryRanker(synthetic_history())
    top = ranker.rank(CONV, space_configs(load_space("default")), Budget(1.0), top=3)
    families = {(c.method, c.backend, c.compile) for c, _, _ in top}
    assert len(families) == 3  # not three observer variants of one guess
    # Fewer families than asked for: the rest is filled by the next best, still without repeats.
    static = [c for c in space_configs(load_space("default")) if c.method == "static_int8"]
    x86 = [c for c in static if c.backend == "x86"]
    picked = ranker.rank(CONV, x86, Budget(1.0), top=3)
    assert len({c.to_json() for c, _, _ in picked}) == 3


def test_alternate_puts_the_rules_first_and_keeps_the_rest():
    assert alternate(["r1", "r2", "r3"], ["h1"]) == ["r1", "h1", "r2", "r3"]
    assert alternate([], ["h1", "h2"]) == ["h1", "h2"]


def test_history_read_back_from_mlflow(tmp_path, mlp_task, cnn_task, lstm_task, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for task in (mlp_task, cnn_task):
        search(
            task,
            "1pt",
            "quick",
            n_trials=4,
            study_name=f"past-{task.model_name}",
            progress=False,
            log=lambda _: None,
            tracker=MlflowTracker(uri),
        )
    examples = load_history(uri)
    assert {e.study for e in examples} == {"past-mlp", "past-cnn"}
    assert all(e.model_features["log_macs"] > 0 for e in examples)
    assert all(isinstance(e.config, QuantConfig) and e.speedup > 0 for e in examples)
    assert {e.study for e in load_history(uri, exclude_model="mlp")} == {"past-cnn"}

    assert main(["recommend", "lstm", "--from-history", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "Learned from past studies: past-cnn, past-mlp" in out
    assert "predicted from past studies" in out and "Suggestion:" in out

    # A study warm-started from the history: its first trials alternate the rules' picks with
    # the history's, and it says which studies it learned from.
    messages = []
    session = open_search(
        lstm_task, "1pt", "quick", warm_start="history", history_uri=uri, log=messages.append
    )
    rules = session.runner.prior_configs()
    ranked, _ = history_candidates(
        session.runner.report.features,
        load_space("quick"),
        Budget(1.0),
        tracking_uri=uri,
        exclude=rules,
    )
    waiting = session.study.get_trials(states=(TrialState.WAITING,))
    waiting = [t.system_attrs["fixed_params"] for t in waiting]
    space, runner = session.runner.space, session.runner
    expected = [space.params_for(c, runner.layers, runner.sensitive_first) for c in rules]
    learned = [space.params_for(c, runner.layers, runner.sensitive_first) for c, _, _ in ranked]
    # the history's picks are new ones, not the rules' again
    assert learned and not any(params in expected for params in learned)
    first = alternate(expected, learned)
    assert waiting[: len(first)] == first
    assert "Warm start learned from past studies: past-cnn, past-mlp" in messages
    announced = ", ".join(c.label() for c, _, _ in ranked)
    assert f"{HISTORY_PICKS}{announced}" in messages

    # a configuration already proposed is never picked again
    features = session.runner.report.features
    top = history_candidates(features, load_space("quick"), Budget(1.0), tracking_uri=uri)[0]
    again = history_candidates(
        features, load_space("quick"), Budget(1.0), tracking_uri=uri, exclude=[top[0][0]]
    )[0]
    assert top[0][0] not in [c for c, _, _ in again] and len(again) == len(top)
