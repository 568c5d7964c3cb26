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
