"""The trial record: every name a trial or study stores is declared once, and a name that is
not declared is refused on read and on write instead of reading as missing."""

import optuna
import pytest

from autoquant import QuantConfig
from autoquant.tracking.record import (
    STUDY_ATTRIBUTES,
    TRIAL_ATTRIBUTES,
    TrialRecord,
    UnknownAttribute,
    attributes,
    declared,
    write,
)


def test_declared_names_round_trip_and_misspelt_ones_are_refused():
    study = optuna.create_study()
    trial = study.ask()
    config = QuantConfig(method="dynamic_int8")
    write(trial, config=config.to_dict(), failure="RuntimeError: boom")
    assert attributes(trial)["config"] == config.to_dict() and "failure" in attributes(trial)
    with pytest.raises(UnknownAttribute, match="'falure' is not a declared attribute"):
        write(trial, falure="typo")
    with pytest.raises(UnknownAttribute):
        attributes(trial).get("violaton")
    with pytest.raises(UnknownAttribute):
        declared(repair=3)
    write(study, n_trials=5)
    assert attributes(study)["n_trials"] == 5
    with pytest.raises(UnknownAttribute):  # a trial's name is not a study's
        write(study, config={})
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    record = TrialRecord.from_trial(study.trials[0])
    assert (record.state, record.config, record.failure) == ("failed", config, "RuntimeError: boom")


def test_a_real_study_stores_only_declared_names(cnn_task):
    from autoquant.study.run import open_search

    session = open_search(cnn_task, "1pt", "quick", n_trials=4, log=lambda _: None)
    session.run(progress=False)
    trial_names = {name for t in session.study.get_trials() for name in t.user_attrs}
    assert {"config", "metrics", "violation"} <= trial_names <= set(TRIAL_ATTRIBUTES)
    assert set(session.study.user_attrs) <= set(STUDY_ATTRIBUTES)


def test_mlflow_names_are_declared_and_spelled_only_in_the_record():
    from pathlib import Path

    from autoquant.tracking.record import (
        RUN_TAGS,
        run_metric,
        run_tag,
        tagged,
        trial_run_metrics,
        trial_run_tags,
    )

    assert run_tag("state") == "autoquant.state"
    assert tagged(role="trial", state="complete") == (
        "tags.`autoquant.role` = 'trial' and tags.`autoquant.state` = 'complete'"
    )
    with pytest.raises(UnknownAttribute):
        run_tag("roll")
    with pytest.raises(UnknownAttribute):
        run_metric("latency")
    # a pruned trial: its reason and times, no metrics it never reached
    attrs = {"pruned_reason": "far past the budget", "subset_drop": 12.0, "quantize_seconds": 1}
    tags = trial_run_tags(3, attrs, "pruned", None)
    assert tags == {
        "autoquant.role": "trial",
        "autoquant.trial": "3",
        "autoquant.state": "pruned",
        "autoquant.reason": "far past the budget",
    }
    assert trial_run_metrics(attrs) == {"subset_drop": 12.0, "quantize_seconds": 1.0}
    # an output equal to float's has an infinite SQNR, which MLflow cannot store: left out
    metrics = {"accuracy": 0.9, "speedup": 2.0, "output_sqnr_db": float("inf")}
    logged = trial_run_metrics({"metrics": metrics, "violation": -0.5})
    assert logged == {
        "accuracy": 0.9,
        "speedup": 2.0,
        "compile_seconds": 0.0,
        "constraint_violation": -0.5,
    }
    package = Path(__file__).resolve().parents[2] / "autoquant"
    for path in package.rglob("*.py"):
        if path.name == "record.py":
            continue
        text = path.read_text()
        for name in RUN_TAGS:
            assert f'"autoquant.{name}"' not in text, f"{path} spells the tag autoquant.{name}"
            assert f"tags.`autoquant.{name}`" not in text, f"{path} spells the tag autoquant.{name}"
