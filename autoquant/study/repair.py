"""The recovery ladder: when one of the study's first configurations breaks the budget, the
changes an expert tries next, one at a time, before the sampler explores on its own.

A sampler needs many trials to learn that one knob (say ``reduce_range``, one bit of activation
resolution) is what separates a fast configuration that breaks the budget from one that holds
it. An expert tries the single changes that buy accuracy at little speed cost first: the full
8-bit activation range, a histogram observer, per-channel weights, quantization-aware
training, then the most sensitive layers in float, fewest first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import optuna

from autoquant.engine.config import QuantConfig
from autoquant.engine.methods import get_method
from autoquant.study.space import SearchSpace
from autoquant.tracking.record import attributes, declared, write

MAX_SOURCES = 2  # first trials whose failure is repaired; the sampler takes it from there
MAX_FLOAT_STEPS = 3  # at most the 3 most sensitive layers kept in float by the ladder


def repairs(
    config: QuantConfig,
    space: SearchSpace,
    layers: Sequence[str],
    sensitive_first: Sequence[str],
) -> list[QuantConfig]:
    """The single changes to ``config`` that may recover accuracy, cheapest in speed first,
    limited to those ``space`` holds."""
    if not get_method(config.method).repairable:
        return []
    uses = get_method(config.method).uses
    steps = []
    if "reduce_range" in uses and config.reduce_range:
        steps.append(dataclasses.replace(config, reduce_range=False))
    if "activation_observer" in uses and config.activation_observer != "histogram":
        steps.append(dataclasses.replace(config, activation_observer="histogram"))
    if "weight_observer" in uses and config.weight_observer != "per_channel_minmax":
        steps.append(dataclasses.replace(config, weight_observer="per_channel_minmax"))
    if config.method == "static_int8":
        steps.append(dataclasses.replace(config, method="qat_int8"))
    if "keep_float" in uses and not config.keep_float:
        limit = space.max_float if space.layer_mode == "ranked" else len(layers) - 1
        for k in range(1, min(limit, MAX_FLOAT_STEPS, len(sensitive_first)) + 1):
            steps.append(dataclasses.replace(config, keep_float=tuple(sensitive_first[:k])))
    return space.inside(steps, layers, sensitive_first)


class RecoveryLadder:
    """Optuna callback: when one of the study's first trials (those it was started with) breaks
    the budget, enqueue that configuration's repairs as the next trials.

    Only configurations worth repairing are: for the latency objective, those at least as fast
    as float (or pruned before they were timed). At most ``MAX_SOURCES`` per study.
    """

    def __init__(self, runner) -> None:
        self.runner = runner  # the study's Objective: space, layers, sensitivity, objective

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = attributes(trial)
        first = "fixed_params" in trial.system_attrs and "repair_of" not in attrs
        if not first or "config" not in attrs or "duplicate_of" in attrs:
            return
        pruned = trial.state == optuna.trial.TrialState.PRUNED
        broke = pruned or (
            trial.state == optuna.trial.TrialState.COMPLETE and attrs.get("violation", 0) > 0
        )
        if not broke:
            return
        speedup = (attrs.get("metrics") or {}).get("speedup")
        if self.runner.objective == "latency" and speedup is not None and speedup < 1.0:
            return  # slower than float already: accuracy bought back would not help
        repaired = attributes(study).get("repaired", [])
        if len(repaired) >= MAX_SOURCES or trial.number in repaired:
            return
        write(study, repaired=[*repaired, trial.number])
        runner = self.runner
        config = QuantConfig.from_dict(attrs["config"])
        for step in repairs(config, runner.space, runner.layers, runner.sensitive_first):
            params = runner.space.params_for(step, runner.layers, runner.sensitive_first)
            study.enqueue_trial(
                params, user_attrs=declared(repair_of=trial.number), skip_if_exists=True
            )
