"""Local steps: a trial the sampler spent on a repeat is followed by an untried neighbour of the
best configurations within budget; a new best that keeps layers in float is followed by the
same configuration with one layer fewer in float."""

from types import SimpleNamespace

import optuna

from autoquant import QuantConfig
from autoquant.study.explore import (
    REPEATS_TO_STOP,
    LocalSteps,
    StopWhenRepeating,
    fewer_float,
    neighbours,
)
from autoquant.study.space import parse_space
from autoquant.tracking.record import attributes

SPACE = parse_space(
    "methods: [fp32, static_int8, pt2e_static_int8]\nbackends: [x86, fbgemm]\n"
    "activation_observers: [histogram]\nweight_observers: [per_channel_minmax]\n"
    "reduce_range: [true, false]\ncompile: [off, inductor]\n"
    "layers:\n  mode: ranked\n  max_float: 2\n",
    name="explore-test",
)
LAYERS = ["conv1", "conv2", "fc"]
SENSITIVE_FIRST = ["fc", "conv1", "conv2"]
STATIC = QuantConfig(
    "static_int8", "x86", activation_observer="histogram", keep_float=("fc",)
).canonical()


def test_neighbours_change_one_field_at_a_time_inside_the_space():
    steps = neighbours(STATIC, SPACE, LAYERS, SENSITIVE_FIRST)
    labels = [step.label() for step in steps]
    assert labels == [
        "static_int8 x86 histogram full-range float:1",  # reduce_range first
        "static_int8 fbgemm histogram float:1",
        "static_int8 x86 histogram",  # one layer fewer in float
        "static_int8 x86 histogram float:2",  # one more
        "fp32",  # another method: the fields it does not use drop out
        "pt2e_static_int8 x86 histogram float:1",
    ]
    assert steps[3].keep_float == ("fc", "conv1")  # the next most sensitive layer
    assert all(SPACE.params_for(s, LAYERS, SENSITIVE_FIRST) is not None for s in steps)


def _finished(config: QuantConfig, speedup: float, *, violation: float = 0.0, **attrs):
    return optuna.trial.create_trial(
        value=1 / speedup,
        user_attrs={
            "config": config.to_dict(),
            "config_key": config.to_json(),
            "violation": violation,
            **attrs,
        },
    )


def _queued(study):
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    return [(t.system_attrs["fixed_params"], attributes(t)["step_of"]) for t in waiting]


def test_a_repeated_trial_is_followed_by_an_untried_neighbour_of_the_best():
    study = optuna.create_study()
    runner = SimpleNamespace(space=SPACE, layers=LAYERS, sensitive_first=SENSITIVE_FIRST)
    full_range = QuantConfig(**{**STATIC.to_dict(), "reduce_range": False})
    study.add_trial(_finished(QuantConfig("fp32"), 1.0))
    study.add_trial(_finished(STATIC, 4.0))
    study.add_trial(_finished(full_range, 9.0, violation=2.0))  # fastest, but over budget
    steps = LocalSteps(runner)

    steps(study, study.trials[0])  # neither a repeat nor the best: nothing to do
    assert _queued(study) == []

    study.add_trial(_finished(STATIC, 4.0, duplicate_of=1))
    steps(study, study.trials[-1])
    # the best within budget is trial 1; its first neighbour (full range) is measured already
    fbgemm = QuantConfig(**{**STATIC.to_dict(), "backend": "fbgemm"})
    assert _queued(study) == [(SPACE.params_for(fbgemm, LAYERS, SENSITIVE_FIRST), 1)]

    study.add_trial(_finished(STATIC, 4.0, duplicate_of=1))
    steps(study, study.trials[-1])
    fewer = QuantConfig(**{**STATIC.to_dict(), "keep_float": ()})
    assert _queued(study)[1] == (SPACE.params_for(fewer, LAYERS, SENSITIVE_FIRST), 1)


def test_no_step_without_a_configuration_within_budget():
    study = optuna.create_study()
    runner = SimpleNamespace(space=SPACE, layers=LAYERS, sensitive_first=SENSITIVE_FIRST)
    study.add_trial(_finished(STATIC, 4.0, violation=1.0))
    study.add_trial(_finished(STATIC, 4.0, violation=1.0, duplicate_of=0))
    LocalSteps(runner)(study, study.trials[-1])
    assert _queued(study) == []


def test_no_step_once_the_study_has_all_its_trials():
    study = optuna.create_study()
    study.set_user_attr("n_trials", 2)
    runner = SimpleNamespace(space=SPACE, layers=LAYERS, sensitive_first=SENSITIVE_FIRST)
    study.add_trial(_finished(STATIC, 4.0))
    study.add_trial(_finished(STATIC, 4.0, duplicate_of=0))
    LocalSteps(runner)(study, study.trials[-1])
    assert _queued(study) == []


def test_fewer_float_quantizes_the_least_sensitive_float_layer():
    two = QuantConfig(**{**STATIC.to_dict(), "keep_float": ("fc", "conv1")})
    assert fewer_float(two, SPACE, LAYERS, SENSITIVE_FIRST).keep_float == ("fc",)
    assert fewer_float(STATIC, SPACE, LAYERS, SENSITIVE_FIRST).keep_float == ()
    assert fewer_float(QuantConfig("fp32"), SPACE, LAYERS, SENSITIVE_FIRST) is None
    per_layer = parse_space(
        "methods: [static_int8]\nactivation_observers: [histogram]\n"
        "weight_observers: [per_channel_minmax]\nlayers:\n  mode: per_layer\n",
        name="explore-per-layer",
    )
    keep = QuantConfig(**{**STATIC.to_dict(), "keep_float": ("conv1", "conv2")})
    # conv2 is less sensitive than conv1: it is the one quantized
    assert fewer_float(keep, per_layer, LAYERS, SENSITIVE_FIRST).keep_float == ("conv1",)


def test_a_new_best_with_float_layers_is_followed_by_one_layer_fewer_in_float():
    study = optuna.create_study()
    runner = SimpleNamespace(space=SPACE, layers=LAYERS, sensitive_first=SENSITIVE_FIRST)
    steps = LocalSteps(runner)
    study.add_trial(_finished(QuantConfig("fp32"), 1.0))
    steps(study, study.trials[-1])  # the best, but nothing kept in float: nothing to do
    assert _queued(study) == []

    study.add_trial(_finished(STATIC, 4.0))
    steps(study, study.trials[-1])
    fewer = QuantConfig(**{**STATIC.to_dict(), "keep_float": ()})
    assert _queued(study) == [(SPACE.params_for(fewer, LAYERS, SENSITIVE_FIRST), 1)]

    slower = QuantConfig(**{**STATIC.to_dict(), "backend": "fbgemm"})
    study.add_trial(_finished(slower, 3.0))
    steps(study, study.trials[-1])  # not the best: nothing more
    assert len(_queued(study)) == 1

    over = QuantConfig(**{**STATIC.to_dict(), "reduce_range": False})
    study.add_trial(_finished(over, 9.0, violation=2.0))
    steps(study, study.trials[-1])  # fastest, but over budget: not a best within budget
    assert len(_queued(study)) == 1


def _repeating_objective(new_at: set[int]):
    """Every trial repeats trial 0, except those numbered in ``new_at``."""

    def objective(trial: optuna.Trial) -> float:
        if trial.number and trial.number not in new_at:
            trial.set_user_attr("duplicate_of", 0)
        return 1.0

    return objective


def test_a_study_stops_after_a_run_of_repeats():
    messages = []
    study = optuna.create_study()
    study.optimize(
        _repeating_objective({4}), n_trials=40, callbacks=[StopWhenRepeating(messages.append)]
    )
    # trial 4 was new: the run of repeats starts at 5 and reaches its length at 14
    assert len(study.trials) == 5 + REPEATS_TO_STOP
    assert messages and f"after trial {4 + REPEATS_TO_STOP}" in messages[0]


def test_a_queued_step_keeps_the_study_going():
    study = optuna.create_study()
    steps = StopWhenRepeating(lambda _: None)

    def enqueue_then_repeat(study, trial):
        if trial.number == REPEATS_TO_STOP:  # a step is queued: the study must run it
            study.enqueue_trial({})

    study.optimize(
        _repeating_objective(set()),
        n_trials=REPEATS_TO_STOP + 3,
        callbacks=[enqueue_then_repeat, steps],
    )
    assert len(study.trials) == REPEATS_TO_STOP + 2


def test_a_step_that_keeps_every_layer_in_float_counts_as_float():
    # Measured in a benchmark study of the mlp (3 layers): the step "one more layer in float"
    # from float:2 is float, which was measured; compared by its own key it never counted as
    # measured, so it was queued again after every repeat: 17 trials in a row repeated float.
    study = optuna.create_study()
    layers = ["fc1", "fc2", "fc3"]
    space = parse_space(
        "methods: [fp32, dynamic_fp16]\nbackends: [x86]\nlayers:\n  mode: ranked\n  max_float: 3\n",
        name="explore-all-float",
    )
    runner = SimpleNamespace(space=space, layers=layers, sensitive_first=layers)
    two = QuantConfig("dynamic_fp16", "x86", keep_float=("fc1", "fc2")).canonical()
    one = QuantConfig("dynamic_fp16", "x86", keep_float=("fc1",)).canonical()
    none = QuantConfig("dynamic_fp16", "x86").canonical()
    study.add_trial(_finished(QuantConfig("fp32"), 1.0))
    for config in (two, one, none):
        study.add_trial(_finished(config, 0.7))
    study.add_trial(_finished(QuantConfig("fp32"), 1.0, duplicate_of=0))
    LocalSteps(runner)(study, study.trials[-1])
    assert _queued(study) == []  # every neighbour is measured: float counts as measured
    all_float = QuantConfig("dynamic_fp16", "x86", keep_float=tuple(layers))
    assert all_float.for_layers(layers) == QuantConfig("fp32")


def test_a_step_is_queued_once_whatever_it_was_measured_as():
    # Measured in a benchmark study of the mlp: the step "static int8 on onednn" kept the
    # affine qscheme, which onednn does not take; the trial measured it as symmetric, so the
    # step never counted as measured and was queued after every repeat: 13 trials in a row.
    study = optuna.create_study()
    runner = SimpleNamespace(space=SPACE, layers=LAYERS, sensitive_first=SENSITIVE_FIRST)
    study.add_trial(_finished(STATIC, 4.0))
    full_range = QuantConfig(**{**STATIC.to_dict(), "reduce_range": False})  # first neighbour
    params = SPACE.params_for(full_range, LAYERS, SENSITIVE_FIRST)
    # the step was run, but recorded under another key (as if normalized on the way)
    stepped = _finished(STATIC, 4.0, duplicate_of=0, config_key="measured as something else")
    stepped.system_attrs["fixed_params"] = params
    study.add_trial(stepped)
    LocalSteps(runner)(study, study.trials[-1])
    assert params not in [queued for queued, _ in _queued(study)]
    assert _queued(study)  # the next untried neighbour instead


def test_a_step_to_onednn_takes_the_symmetric_qscheme_onednn_needs():
    space = parse_space(
        "methods: [static_int8]\nbackends: [x86, onednn]\nactivation_observers: [histogram]\n"
        "weight_observers: [per_channel_minmax]\nqschemes: [affine, symmetric]\n",
        name="explore-onednn",
    )
    config = QuantConfig("static_int8", "x86", activation_observer="histogram").canonical()
    onednn = [
        s for s in neighbours(config, space, LAYERS, SENSITIVE_FIRST) if s.backend == "onednn"
    ]
    assert [s.qscheme for s in onednn] == ["symmetric"]


def test_no_step_from_a_configuration_far_slower_than_the_best():
    study = optuna.create_study()
    runner = SimpleNamespace(space=SPACE, layers=LAYERS, sensitive_first=SENSITIVE_FIRST)
    study.add_trial(_finished(QuantConfig("fp32"), 1.0))
    study.add_trial(_finished(QuantConfig("static_int8", "x86").canonical(), 0.5))
    for neighbour in neighbours(QuantConfig("fp32"), SPACE, LAYERS, SENSITIVE_FIRST):
        study.add_trial(_finished(neighbour, 0.5))  # float's every neighbour is measured
    study.add_trial(_finished(QuantConfig("fp32"), 1.0, duplicate_of=0))
    LocalSteps(runner)(study, study.trials[-1])
    assert _queued(study) == []  # static int8 at half float's speed is no place to step from


def test_a_qat_step_is_measured_as_static_int8_first():
    # Measured on the lstm (bs1-t1): ten QAT steps, up to 4 s each, where static int8 with the
    # same choices gives the same speed and size in 0.15 s.
    space = parse_space(
        "methods: [static_int8, qat_int8]\nbackends: [x86, fbgemm]\n"
        "activation_observers: [histogram]\nweight_observers: [per_channel_minmax]\n",
        name="explore-qat",
    )
    study = optuna.create_study()
    runner = SimpleNamespace(space=space, layers=LAYERS, sensitive_first=SENSITIVE_FIRST)
    qat = QuantConfig("qat_int8", "x86", activation_observer="histogram").canonical()
    study.add_trial(_finished(qat, 2.0))
    study.add_trial(_finished(qat, 2.0, duplicate_of=0))
    LocalSteps(runner)(study, study.trials[-1])
    ((params, source),) = _queued(study)
    assert source == 0
    assert params == space.params_for(
        QuantConfig("static_int8", "fbgemm", activation_observer="histogram"), LAYERS
    )  # the backend step, measured without fine-tuning
    # once static int8 on fbgemm holds the budget, the QAT step on fbgemm is never queued
    study.add_trial(
        _finished(
            QuantConfig(
                **{**qat.to_dict(), "method": "static_int8", "backend": "fbgemm"}
            ).canonical(),
            2.0,
        )
    )
    study.add_trial(_finished(qat, 2.0, duplicate_of=0))
    LocalSteps(runner)(study, study.trials[-1])
    assert all(p["method"] == "static_int8" for p, _ in _queued(study))
