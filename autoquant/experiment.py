"""Experiment files (YAML in experiments/) and turning their model and task names into a Task.

An experiment file holds the same settings as the ``autoquant search`` flags; flags given on
the command line override the file. User code is imported only where the user names it as
``module:attr``; checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from autoquant.errors import ConfigError
from autoquant.tasks import Task, get_task
from autoquant.tasks.zoo import ZOO


@dataclasses.dataclass
class Experiment:
    """Everything ``autoquant search`` needs; each field has a flag of the same name."""

    task: str = "digits"
    model: str = "resnet18"
    checkpoint: str | None = None
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


def _check_type(file: Path, key: str, value: Any, annotation: str) -> None:
    allowed = {
        "str": (str,),
        "str | None": (str, type(None)),
        "int": (int,),
        "int | None": (int, type(None)),
        "float | None": (int, float, type(None)),
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
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(
            f"The checkpoint {str(file)!r} holds more than tensors: loading it would run code "
            f"from the file, and autoquant loads checkpoints with weights_only=True. Save the "
            f"weights alone with torch.save(model.state_dict(), path). If you trust the file, "
            f"opt in by loading it yourself in a factory function and naming it with "
            f"--model module:factory."
        ) from None
    except Exception as err:  # noqa: BLE001 - any other read failure means a corrupt file
        raise ConfigError(
            f"The checkpoint {str(file)!r} cannot be read (corrupt or not a torch file): "
            f"{type(err).__name__}: {err}."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ConfigError(
            f"The checkpoint {str(file)!r} does not fit the model: {str(err).splitlines()[0]}"
        ) from None
    return model.eval()


def build_task(experiment: Experiment, log=print) -> Task:
    """The Task an experiment names: a zoo model by name, or the user's ``module:factory``."""
    if ":" not in experiment.model:
        if experiment.model not in ZOO and experiment.checkpoint is None:
            raise ConfigError(
                f"The 'model' setting must be a zoo model {list(ZOO)} or 'module:factory'. "
                f"Got {experiment.model!r} instead."
            )
        task = get_task(experiment.task, experiment.model, log=log)
        if experiment.checkpoint:
            load_checkpoint(task.model, experiment.checkpoint)
        return task
    factory = import_object(experiment.model)
    model = factory if isinstance(factory, nn.Module) else factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"{experiment.model!r} must be an nn.Module or return one. Got {type(model).__name__}."
        )
    if experiment.checkpoint:
        load_checkpoint(model, experiment.checkpoint)
    return get_task(experiment.task, model.eval(), model_name=experiment.model, log=log)
