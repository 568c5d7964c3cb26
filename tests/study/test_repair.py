from autoquant import QuantConfig, search
from autoquant.study.repair import repairs
from autoquant.study.space import load_space, parse_space
from autoquant.tasks import digits_task

LAYERS = ["block1.0", "block2.0", "block3.0", "fc"]
SENSITIVE = ["block3.0", "fc", "block2.0", "block1.0"]


def test_ladder_tries_single_changes_cheapest_first():
    config = QuantConfig(
        method="static_int8", activation_observer="minmax", weight_observer="minmax"
    )
    steps = repairs(config, load_space("default"), LAYERS, SENSITIVE)
    assert [s.label() for s in steps] == [
        "static_int8 x86 minmax per-tensor full-range",
        "static_int8 x86 histogram per-tensor",
        "static_int8 x86 minmax",
        "qat_int8 x86 minmax per-tensor",
        "static_int8 x86 minmax per-tensor float:1",
        "static_int8 x86 minmax per-tensor float:2",
        "static_int8 x86 minmax per-tensor float:3",
    ]
    assert steps[-1].keep_float == ("block3.0", "fc", "block2.0")  # the most sensitive first


def test_ladder_stays_inside_the_space():
    space = parse_space(
        "methods: [static_int8]\nbackends: [x86]\nreduce_range: [true]\n"
        "activation_observers: [minmax, histogram]\nweight_observers: [per_channel_minmax]\n"
        "layers: {mode: ranked, max_float: 1}\n"
    )
    config = QuantConfig(method="static_int8", activation_observer="minmax")
    steps = repairs(config, space, LAYERS, SENSITIVE)
    assert [s.label() for s in steps] == [
        "static_int8 x86 histogram",
        "static_int8 x86 minmax float:1",
    ]
    assert repairs(QuantConfig(method="dynamic_fp16"), space, LAYERS, SENSITIVE) == []


def test_a_first_trial_that_breaks_the_budget_is_repaired_next():
    # cnn_outliers: all-layer static int8 with the default 7-bit activations breaks 1 point
    # (pruned); the full 8-bit range is the ladder's first step and holds it.
    task = digits_task("cnn_outliers")
    recommendation = search(task, "1pt", "default", n_trials=8, progress=False, log=print)
    records = {r.number: r for r in recommendation.records}
    assert records[0].config.label() == "static_int8 x86 histogram"
    assert records[0].state == "pruned"
    study_trials = recommendation.records
    repaired = [r for r in study_trials if r.repair_of == 0]
    assert repaired, "no trial repaired the first one"
    first_repair = repaired[0]
    assert first_repair.config.label() == "static_int8 x86 histogram full-range"
    assert first_repair.feasible and not first_repair.config.keep_float
