"""Experiment files (YAML in experiments/) and turning their model and task names into a Task.

An experiment file holds the same settings as the ``autoquant search`` flags; flags given on
the command line override the file. User code is imported only where the user names it as
``module:attr``; checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from autoquant.engine.data import load_weights_only
from autoquant.errors import ConfigError
from autoquant.tasks import Task, get_task
from autoquant.tasks.zoo import ZOO


@dataclasses.dataclass
class Experiment:
    """Everything ``autoquant search`` needs; each field has a flag of the same name."""

    task: str = "digits"
    model: str | None = None
    checkpoint: str | None = None
    data: str | None = None
    metric: str | None = None
    resize: int | None = None
    crop: int | None = None
    mean: list | None = None
    std: list | None = None
    budget: str = "1pt"
    space: str = "default"
    objective: str = "latency"
    scenario: str = "bs1-t1"
    trials: int | None = 40
    timeout: float | None = None
    storage: str | None = "sqlite:///autoquant.db"
    study: str | None = None
    seed: int | None = 0
    jobs: int = 1
    out: str | None = None
    tracking_uri: str | None = None


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment YAML file (safe loader); unknown keys and wrong types are refused."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"The experiment file {str(file)!r} does not exist.")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: an experiment must be a mapping of settings.")
    fields = {f.name: f for f in dataclasses.fields(Experiment)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{file}: unknown key(s) {unknown}; the keys are {sorted(fields)}.")
    for key, value in data.items():
        _check_type(file, key, value, fields[key].type)
    return Experiment(**data)


def _floats(value: Any, key: str) -> list[float]:
    """A list of numbers, from a YAML list or a comma-separated flag ('0.5,0.5,0.5')."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError):
        raise ConfigError(
            f"The {key!r} setting must be numbers, one per channel (e.g. "
            f"'0.485,0.456,0.406'). Got {value!r} instead."
        ) from None


def _check_type(file: Path, key: str, value: Any, annotation: str) -> None:
    allowed = {
        "str": (str,),
        "str | None": (str, type(None)),
        "int": (int,),
        "int | None": (int, type(None)),
        "float | None": (int, float, type(None)),
        "list | None": (list, type(None)),
    }[annotation]
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ConfigError(
            f"{file}: the key {key!r} must be {annotation.replace(' | None', ' or null')}. "
            f"Got {value!r} instead."
        )


def import_object(spec: str) -> Any:
    """The object named by ``module:attr`` (the only way autoquant imports user code)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{spec!r} must be 'module:attr' (for example 'mypkg.models:build').")
    # The working directory is where a user's own modules are (the console script does not
    # put it on the path, `python -m` does): look there too, as `python -m` would.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"Cannot import {module_name!r} (from {spec!r}): {err}.") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{module_name!r} has no attribute {attr!r} (from {spec!r}).") from None


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state_dict checkpoint into ``model`` with ``weights_only=True``."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"The checkpoint {str(file)!r} does not exist.")
    if not zipfile.is_zipfile(file):  # torch.save writes a zip archive
        raise ConfigError(
            f"The checkpoint {str(file)!r} cannot be read (corrupt or not a torch file): it is "
            f"not the archive torch.save writes. Check the path, or save it again."
        )
    state = load_weights_only(
        file,
        "checkpoint",
        "loading it would run code from the file, and autoquant loads checkpoints with "
        "weights_only=True. Save the weights alone with torch.save(model.state_dict(), path). "
        "If you trust the file, opt in by loading it yourself in a factory function and naming "
        "it with --model module:factory.",
    )
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"The checkpoint {str(file)!r} does not fit the model: {str(err).splitlines()[0]}"
        ) from None
    return model.eval()


#: The model of the built-in digits task when none is named.
DEFAULT_ZOO_MODEL = "resnet18"


def load_task(spec: str) -> Task:
    """The Task named ``module:attr``: a Task, or a function of no arguments returning one."""
    found = import_object(spec)
    task = found() if callable(found) and not isinstance(found, Task) else found
    if not isinstance(task, Task):
        raise ConfigError(
            f"The 'task' setting {spec!r} must name an autoquant.Task or a function returning "
            f"one. Got {type(task).__name__} instead."
        )
    return task


def load_model(spec: str, checkpoint: str | None) -> nn.Module:
    """The user's model ``module:factory`` (a module or a function of no arguments returning
    one), with the checkpoint loaded into it when given."""
    factory = import_object(spec)
    if isinstance(factory, nn.Module):
        model = factory
    elif isinstance(factory, type) and not issubclass(factory, nn.Module):
        raise ConfigError(
            f"The 'model' setting {spec!r} must name an nn.Module or a function returning one. "
            f"Got the class {factory.__name__}."
        )
    elif callable(factory):
        try:
            model = factory()
        except TypeError as err:
            raise ConfigError(
                f"The 'model' setting {spec!r} must be a function of no arguments returning an "
                f"nn.Module; calling it failed: {err}."
            ) from None
    else:
        model = factory
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"The 'model' setting {spec!r} must be an nn.Module or return one. Got "
            f"{type(model).__name__} instead."
        )
    if checkpoint:
        load_checkpoint(model, checkpoint)
    return model.eval()


def build_task(experiment: Experiment, log=print) -> Task:
    """The Task an experiment names: a built-in task (``digits`` with a zoo model or the
    user's ``module:factory``; ``imagefolder`` or ``tensors`` over the user's files with the
    user's model) or the user's own ``module:attr`` Task."""
    from autoquant.tasks.files import imagefolder_task, tensors_task
    from autoquant.tasks.metrics import get_metric

    metric = experiment.metric
    if metric is not None:
        metric = get_metric(import_object(metric) if ":" in metric else metric)
    if ":" in experiment.task:
        task = load_task(experiment.task)
        if experiment.model:  # another model on the same data
            model = load_model(experiment.model, experiment.checkpoint)
            task = dataclasses.replace(task, model=model, model_name=experiment.model)
        elif experiment.checkpoint:
            load_checkpoint(task.model, experiment.checkpoint)
        return dataclasses.replace(task, metric=metric) if metric is not None else task
    if experiment.task in ("imagefolder", "tensors"):
        if not experiment.model or ":" not in experiment.model:
            raise ConfigError(
                f"The {experiment.task!r} task needs your model as 'module:factory' (--model). "
                f"Got {experiment.model!r} instead."
            )
        if not experiment.data:
            raise ConfigError(
                f"The {experiment.task!r} task needs the data's path (--data): "
                + (
                    "a folder of class subfolders of images."
                    if experiment.task == "imagefolder"
                    else "a file of tensors saved with torch.save."
                )
            )
        model = load_model(experiment.model, experiment.checkpoint)
        if experiment.task == "tensors":
            return tensors_task(model, experiment.data, metric=metric, model_name=experiment.model)
        sizes = {k: v for k, v in (("resize", experiment.resize), ("crop", experiment.crop)) if v}
        norms = {
            k: _floats(v, k) for k, v in (("mean", experiment.mean), ("std", experiment.std)) if v
        }
        return imagefolder_task(
            model, experiment.data, metric=metric, model_name=experiment.model, **sizes, **norms
        )
    name = experiment.model or DEFAULT_ZOO_MODEL
    if ":" not in name:
        if name not in ZOO and experiment.checkpoint is None:
            raise ConfigError(
                f"The 'model' setting must be a zoo model {list(ZOO)} or 'module:factory'. "
                f"Got {name!r} instead."
            )
        task = get_task(experiment.task, name, log=log)
        if experiment.checkpoint:
            load_checkpoint(task.model, experiment.checkpoint)
    else:
        model = load_model(name, experiment.checkpoint)
        task = get_task(experiment.task, model, model_name=name, log=log)
    return dataclasses.replace(task, metric=metric) if metric is not None else task
