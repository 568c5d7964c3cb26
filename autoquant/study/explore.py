"""Local steps: when the sampler proposes a configuration the study has already measured, the
next trial is an untried single change of one of the best configurations within budget; when a
trial becomes the best within budget while keeping layers in float, the next trial keeps one
layer fewer in float.

A trial spent on a repeat measures nothing new. On a small space TPE returns to its best region
often: measured in a 20-trial study of resnet18 at bs1-t1, 7 of the 20 trials repeated a
configuration already measured, while the fastest configuration of the space (static int8 x86
with the full 8-bit activation range, one change from the study's fourth best) was never
tried. An expert who holds good configurations tries their neighbours, one change at a time.

Float layers cost speed, and a study that finds a good configuration with k layers in float
rarely samples the same configuration with k - 1 by chance: measured on the cnn (bs64-t2, 1
point, 15 trials), the study warm-started by the rules kept two layers in float (3.77x) where
another study found one enough (4.20x). An expert asks "can one more layer be int8?" next.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import optuna

from autoquant.engine.config import QuantConfig
from autoquant.engine.methods import get_method
from autoquant.recommend.recommendation import FINALISTS, TRIAL_NOISE
from autoquant.study.space import SearchSpace
from autoquant.tracking.record import attributes, declared

#: The fields a local step changes, in the order they are tried (the method last: a new method
#: is the largest change).
_FIELDS = (
    "reduce_range",
    "backend",
    "activation_observer",
    "weight_observer",
    "qscheme",
    "activation_dtype",
    "weight_dtype",
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
    values = {field: space.values_of(field) for field in _FIELDS if field != "keep_float"}
    steps = []
    for field in _FIELDS:
        if field == "keep_float":
            if "keep_float" in uses and space.layer_mode == "ranked":
                k = len(config.keep_float)
                for n in (k - 1, k + 1):
                    if 0 <= n <= min(space.max_float, len(sensitive_first)):
                        keep = tuple(sensitive_first[:n])
                        steps.append(dataclasses.replace(config, keep_float=keep))
        elif field == "backend" and "backend" in uses:
            for backend in values["backend"]:
                if backend != config.backend:
                    step = dataclasses.replace(config, backend=backend)
                    if backend == "onednn" and "qscheme" in uses:
                        step = dataclasses.replace(step, qscheme="symmetric")  # as suggested
                    steps.append(step)
        elif field in uses or field == "method":
            current = getattr(config, field)
            steps += [
                dataclasses.replace(config, **{field: v}) for v in values[field] if v != current
            ]
    return space.inside(steps, layers, sensitive_first, exclude=[config])


def fewer_float(
    config: QuantConfig,
    space: SearchSpace,
    layers: Sequence[str],
    sensitive_first: Sequence[str],
) -> QuantConfig | None:
    """``config`` with the least sensitive of its float layers quantized, if ``space`` holds
    it (None when no layer is kept in float)."""
    if not config.keep_float:
        return None
    rank = {name: i for i, name in enumerate(sensitive_first)}
    least = max(config.keep_float, key=lambda name: rank.get(name, len(rank)))
    keep = tuple(name for name in config.keep_float if name != least)
    inside = space.inside([dataclasses.replace(config, keep_float=keep)], layers, sensitive_first)
    return inside[0] if inside else None


def cheaper_twin(config: QuantConfig, space: SearchSpace, layers, sensitive_first):
    """The configuration of the method ``config``'s method builds its models like
    (``deploys_as``: static int8 for QAT), with the same choices, if ``space`` holds it: the
    same speed and size, measured without fine-tuning. None when there is none."""
    twin_method = get_method(config.method).deploys_as
    if twin_method is None:
        return None
    twin = dataclasses.replace(
        config, method=twin_method, calibration_batches=max(space.calibration_batches)
    )
    inside = space.inside([twin], layers, sensitive_first)
    return inside[0] if inside else None


def twin_within_budget(
    config: QuantConfig, trials: Sequence[optuna.trial.FrozenTrial]
) -> optuna.trial.FrozenTrial | None:
    """A complete trial of the method ``config``'s method builds its models like
    (``deploys_as``), with the same choices, that holds the budget: then ``config`` can only be
    more accurate, never faster or smaller. None when there is none."""
    twin_method = get_method(config.method).deploys_as
    if twin_method is None:
        return None
    shared = (get_method(config.method).uses & get_method(twin_method).uses) - {
        "calibration_batches"  # scales only: the kernels and size are the same
    }
    for trial in trials:
        attrs = attributes(trial)
        if (
            trial.state != optuna.trial.TrialState.COMPLETE
            or "config" not in attrs
            or attrs.get("violation", 1) > 0
            or attrs["config"]["method"] != twin_method
        ):
            continue
        twin = QuantConfig.from_dict(attrs["config"])
        if all(getattr(twin, f) == getattr(config, f) for f in shared):
            return trial
    return None


class LocalSteps:
    """Optuna callback: after a trial that repeated a measured configuration, enqueue one untried
    neighbour of the best trials within budget (the best first; as many as go to the final
    round, those within one trial's timing noise of the best); after a trial that became the
    best within budget while keeping layers in float, enqueue it with one layer fewer in float.
    Single-objective studies only."""

    def __init__(self, runner) -> None:
        self.runner = runner  # the study's Objective: space, layers, sensitivity

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(study.directions) > 1:
            return
        trials = study.get_trials(deepcopy=False)
        limit = attributes(study).get("n_trials")
        started = [t for t in trials if t.state != optuna.trial.TrialState.WAITING]
        if limit is not None and len(started) >= limit:
            return  # every trial of the study has started: a queued step would be left waiting
        best = sorted(
            (
                t
                for t in trials
                if t.state == optuna.trial.TrialState.COMPLETE
                and attributes(t).get("violation", 1) <= 0
                and "config" in attributes(t)
                and "duplicate_of" not in attributes(t)
            ),
            key=lambda t: t.value,
        )[:FINALISTS]
        # Step only from configurations near the best (within one trial's timing noise): when
        # float is best, a single change of an int8 configuration at half its speed rarely wins
        # (measured on the mlp at bs1-t1: such steps cost 12 trials, QAT ones 2 s each).
        best = [t for t in best if t.value * (1 - TRIAL_NOISE) <= best[0].value]
        runner = self.runner
        if "duplicate_of" in attributes(trial):
            sources = [
                (source.number, step)
                for source in best
                for step in neighbours(
                    QuantConfig.from_dict(attributes(source)["config"]),
                    runner.space,
                    runner.layers,
                    runner.sensitive_first,
                )
            ]
        elif best and best[0].number == trial.number:
            config = QuantConfig.from_dict(attributes(trial)["config"])
            step = fewer_float(config, runner.space, runner.layers, runner.sensitive_first)
            sources = [(trial.number, step)] if step else []
        else:
            return
        measured = {attributes(t).get("config_key") for t in trials}
        # Never queue the same parameters twice, whatever they were measured as: a step that
        # resolves to a measured configuration would otherwise be queued after every repeat.
        queued = [
            t.system_attrs["fixed_params"] for t in trials if "fixed_params" in t.system_attrs
        ]
        for number, step in sources:
            # A QAT step is first measured as static int8 (the same speed and size, a tenth of
            # the cost); QAT itself only where static int8 broke the budget.
            if twin_within_budget(step, trials) is not None:
                continue
            twin = cheaper_twin(step, runner.space, runner.layers, runner.sensitive_first)
            for candidate in [twin, step] if twin is not None else [step]:
                params = runner.space.params_for(candidate, runner.layers, runner.sensitive_first)
                # compared as measured: a step that keeps every layer in float is float
                key = candidate.for_layers(runner.layers).to_json()
                if key not in measured and params not in queued:
                    study.enqueue_trial(params, user_attrs=declared(step_of=number))
                    return


#: A study stops after this many trials in a row repeated measured configurations with no local
#: step left to queue: the sampler has settled and nothing near the best is untried. A repeat
#: costs no measurement, but still the sampler and an MLflow run (a benchmark study of the mlp
#: once ran 17 in a row, trials 13 to 29, when a step could be queued again and again).
REPEATS_TO_STOP = 10


class StopWhenRepeating:
    """Optuna callback: stop the study once its last ``REPEATS_TO_STOP`` trials all repeated
    configurations it had measured and no step is queued (after each repeat, ``LocalSteps``
    queues an untried change of the best configurations if one is left)."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if "duplicate_of" not in attributes(trial):
            return
        trials = study.get_trials(deepcopy=False)
        if any(t.state == optuna.trial.TrialState.WAITING for t in trials):
            return
        finished = [t for t in trials if t.state.is_finished()]
        tail = sorted(finished, key=lambda t: t.number)[-REPEATS_TO_STOP:]
        if len(tail) == REPEATS_TO_STOP and all("duplicate_of" in attributes(t) for t in tail):
            self.log(
                f"Stopping after trial {trial.number}: the last {REPEATS_TO_STOP} trials "
                "repeated configurations already measured, and no untried change of the best "
                "ones is left near them."
            )
            study.stop()
