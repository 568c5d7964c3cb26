"""SearchOptions: one set of defaults and checks for search(), experiment files and the CLI."""

import argparse
import dataclasses

import pytest

from autoquant import Budget, ConfigError, Scenario, SearchOptions
from autoquant.cli import build_parser
from autoquant.study.experiment import COMMAND_DEFAULTS, load_experiment
from autoquant.study.options import key_of, settable_fields
from autoquant.study.space import SearchSpace


def test_values_are_normalized_and_checked_once():
    options = SearchOptions(budget="0.5%", space="quick", scenario="bs8-t2")
    assert options.budget == Budget(0.5, relative=True)
    assert isinstance(options.space, SearchSpace) and options.space.name == "quick"
    assert options.scenario == Scenario(8, 2)
    # replacing a field re-checks it, and keeps the normalized others
    assert dataclasses.replace(options, n_trials=3).space == options.space
    with pytest.raises(ConfigError, match="'n_trials' parameter of SearchOptions must be an int"):
        dataclasses.replace(options, n_trials=0)
    with pytest.raises(ConfigError, match="'isolate' parameter of SearchOptions must be a bool"):
        SearchOptions(isolate="yes")
    with pytest.raises(ConfigError, match="'storage' parameter of SearchOptions must be a non"):
        SearchOptions(storage=5)
    assert SearchOptions(storage="").storage is None  # the command line's "in memory"


def test_an_unknown_setting_names_the_closest_one():
    with pytest.raises(ConfigError, match="got 'objectiv'.* Did you mean 'objective'"):
        SearchOptions.of(None, objectiv="size")
    with pytest.raises(ConfigError, match="'options' parameter of search must be a SearchOpt"):
        SearchOptions.of({"n_trials": 3})


def test_settings_replace_the_options_given():
    base = SearchOptions(n_trials=5, objective="size")
    merged = SearchOptions.of(base, budget=None, space="quick", seed=3)
    assert (merged.n_trials, merged.objective, merged.seed) == (5, "size", 3)
    assert merged.budget == base.budget  # None: keep the options' budget
    assert merged.space.name == "quick"


def test_an_experiment_file_uses_the_same_keys_and_defaults(tmp_path):
    file = tmp_path / "e.yaml"
    file.write_text("model: mlp\ntrials: 7\njobs: 2\nstudy: s\nprune: false\nwarm_start: none\n")
    experiment = load_experiment(file)
    options = experiment.options
    assert (options.n_trials, options.n_jobs, options.study_name) == (7, 2, "s")
    assert options.prune is False and options.warm_start == "none"
    # what the file does not set is the library's default, except where the command differs
    defaults = SearchOptions()
    assert options.storage == COMMAND_DEFAULTS["storage"]
    assert (options.budget, options.seed, options.timeout) == (
        defaults.budget,
        defaults.seed,
        defaults.timeout,
    )
    # flags override the file, and their errors name the flag
    assert load_experiment(file, overrides={"trials": 9}).options.n_trials == 9
    with pytest.raises(ConfigError, match="^--jobs must be an int >= 1. Got 0"):
        load_experiment(file, overrides={"jobs": 0})
    file.write_text("jobs: 0\n")
    with pytest.raises(ConfigError, match="e.yaml: The 'jobs' key must be an int >= 1"):
        load_experiment(file)
    file.write_text("n_trials: 3\n")  # the Python name is not a key
    with pytest.raises(ConfigError, match="unknown key\\(s\\) \\['n_trials'\\]"):
        load_experiment(file)


def test_the_command_has_one_flag_per_setting_with_its_default_in_the_help():
    verbs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    search = verbs.choices["search"]
    flags = {option: action for action in search._actions for option in action.option_strings}
    for field in settable_fields():
        flag = "--" + key_of(field).replace("_", "-")
        assert flag in flags, flag
        assert flags[flag].default is None  # absent: the file, then the default, decides
        if isinstance(field.default, bool):
            assert "--no-" + flag[2:] in flags
        elif field.default is not None:
            shown = COMMAND_DEFAULTS.get(key_of(field), field.default)
            assert f"(default {shown})" in flags[flag].help
    args = build_parser().parse_args(["search", "--trials", "3", "--no-prune"])
    assert (args.trials, args.prune, args.isolate) == (3, False, None)


def test_confidence_must_be_a_level_above_one_half():
    assert SearchOptions(confidence=0.9).confidence == 0.9
    for wrong in (0.5, 1.0, 90):
        with pytest.raises(ConfigError, match="'confidence' parameter of SearchOptions"):
            SearchOptions(confidence=wrong)
