"""Local steps: when the sampler proposes a configuration the study has already measured, the
next trial is an untried single change of one of the best configurations within budget.

A trial spent on a repeat measures nothing new. On a small space TPE returns to its best region
often: measured in a 20-trial study of resnet18 at bs1-t1, 7 of the 20 trials repeated a
configuration already measured, while the fastest configuration of the space (static int8 x86
with the full 8-bit activation range, one change from the study's fourth best) was never
tried. An expert who holds good configurations tries their neighbours, one change at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import optuna

from autoquant.config import QuantConfig
from autoquant.methods import get_method
from autoquant.recommend import FINALISTS
from autoquant.space import SearchSpace

#: User attribute of a trial enqueued as a local step: the trial number it steps from.
STEP_OF = "step_of"

#: The fields a local step changes, in the order they are tried (the method last: a new method
#: is the largest change).
_FIELDS = (
    "reduce_range",
    "backend",
    "activation_observer",
    "weight_observer",
    "qscheme",
    "keep_float",
    "compile",
    "calibration_batches",
    "method",
)


def neighbours(
    config: QuantConfig,
    space: SearchSpace,
    layers: Sequence[str],
    sensitive_first: Sequence[str],
) -> list[QuantConfig]:
    """The configurations of ``space`` one change away from ``config``, in ``_FIELDS`` order.

    In ``ranked`` layer mode, a change of ``keep_float`` keeps one layer fewer or one more of
    the most sensitive in float; other layer modes do not step over layers.
    """
    uses = get_method(config.method).uses
    values = {
        "reduce_range": space.reduce_range,
        "backend": space.backends,
        "activation_observer": space.activation_observers,
        "weight_observer": space.weight_observers,
        "qscheme": space.qschemes,
        "compile": space.compile,
        "calibration_batches": space.calibration_batches,
        "method": space.methods,
    }
    steps = []
    for field in _FIELDS:
        if field == "keep_float":
            if "keep_float" in uses and space.layer_mode == "ranked":
                k = len(config.keep_float)
                for n in (k - 1, k + 1):
                    if 0 <= n <= min(space.max_float, len(sensitive_first)):
                        keep = tuple(sensitive_first[:n])
                        steps.append(dataclasses.replace(config, keep_float=keep))
        elif field in uses or field == "method":
            current = getattr(config, field)
            steps += [
                dataclasses.replace(config, **{field: v}) for v in values[field] if v != current
            ]
    return space.inside(steps, layers, sensitive_first, exclude=[config])


class LocalSteps:
    """Optuna callback: after a trial that repeated a measured configuration, enqueue one untried
    neighbour of the best trials within budget (the best first; as many as go to the final
    round). Single-objective studies only."""

    def __init__(self, runner) -> None:
        self.runner = runner  # the study's Objective: space, layers, sensitivity

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if "duplicate_of" not in trial.user_attrs or len(study.directions) > 1:
            return
        trials = study.get_trials(deepcopy=False)
        limit = study.user_attrs.get("n_trials")
        started = [t for t in trials if t.state != optuna.trial.TrialState.WAITING]
        if limit is not None and len(started) >= limit:
            return  # every trial of the study has started: a queued step would be left waiting
        best = sorted(
            (
                t
                for t in trials
                if t.state == optuna.trial.TrialState.COMPLETE
                and t.user_attrs.get("violation", 1) <= 0
                and "config" in t.user_attrs
                and "duplicate_of" not in t.user_attrs
            ),
            key=lambda t: t.value,
        )[:FINALISTS]
        measured = {t.user_attrs.get("config_key") for t in trials}
        queued = [
            t.system_attrs.get("fixed_params")
            for t in trials
            if t.state == optuna.trial.TrialState.WAITING
        ]
        runner = self.runner
        for source in best:
            config = QuantConfig.from_dict(source.user_attrs["config"])
            for step in neighbours(config, runner.space, runner.layers, runner.sensitive_first):
                params = runner.space.params_for(step, runner.layers, runner.sensitive_first)
                if step.to_json() not in measured and params not in queued:
                    study.enqueue_trial(params, user_attrs={STEP_OF: source.number})
                    return
