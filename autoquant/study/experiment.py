"""Experiment files (YAML in experiments/) and turning their model and task names into a Task.

An experiment file holds the same settings as the ``autoquant search`` flags (the search's
are ``SearchOptions``' keys); flags given on the command line override the file. User code is
imported only where the user names it as ``module:attr``; checkpoints are loaded with
``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from autoquant.engine.data import load_weights_only
from autoquant.errors import ConfigError
from autoquant.study.options import SearchOptions, key_of, settable_fields
from autoquant.tasks import Task, get_task
from autoquant.tasks.zoo import ZOO


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """The settings that name a task: a built-in task or the user's own, the model, its
    checkpoint and data. A worker rebuilds the same task from them."""

    task: str = "digits"
    model: str | None = None
    checkpoint: str | None = None
    data: str | None = None
    metric: str | None = None
    resize: int | None = None
    crop: int | None = None
    mean: list | str | None = None  # a list, or "0.485,0.456,0.406"
    std: list | str | None = None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What ``autoquant search`` runs: an experiment file's keys and the command's flags."""

    task: TaskSpec = TaskSpec()
    options: SearchOptions = dataclasses.field(default_factory=lambda: command_options({}))
    out: str | None = None  # the output folder (default autoquant-out/STUDY)
    tracking_uri: str | None = None  # the MLflow store


TASK_KEYS = tuple(f.name for f in dataclasses.fields(TaskSpec))
OUTPUT_KEYS = ("out", "tracking_uri")
#: Where the command differs from the library: it keeps the study in a file, so that the same
#: command run again resumes it (the library keeps it in memory unless told).
COMMAND_DEFAULTS = {"storage": "sqlite:///autoquant.db"}


def command_options(
    values: dict[str, Any], source: str = "the command", flags: Iterable[str] = ()
) -> SearchOptions:
    """SearchOptions from an experiment file's keys and the command's ``flags``, over the
    command's defaults."""
    return SearchOptions.from_keys(values, source, COMMAND_DEFAULTS, flags)


def task_spec(values: dict[str, Any]) -> TaskSpec:
    """A TaskSpec from the settings stored with a study (unknown names refused)."""
    unknown = sorted(set(values) - set(TASK_KEYS))
    if unknown:
        raise ConfigError(f"unknown task setting(s) {unknown}; they are {list(TASK_KEYS)}.")
    return TaskSpec(**values)


def load_experiment(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Experiment:
    """An experiment file (safe YAML loader) with ``overrides`` (the command's flags, by key;
    None values ignored) over it; the defaults alone when ``path`` is None. Unknown keys and
    wrong types are refused, naming the file and the key."""
    data: dict[str, Any] = {}
    source = "the command"
    if path is not None:
        file = Path(path)
        source = str(file)
        if not file.is_file():
            raise ConfigError(f"The experiment file {source!r} does not exist.")
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{file}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: an experiment must be a mapping of settings.")
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = {**data, **flags}
    option_keys = [key_of(f) for f in settable_fields()]
    known = [*TASK_KEYS, *OUTPUT_KEYS, *option_keys]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; the keys are {sorted(known)}.")
    types = {f.name: f.type for f in dataclasses.fields(TaskSpec)}
    types.update({f.name: f.type for f in dataclasses.fields(Experiment) if f.name in OUTPUT_KEYS})
    for key in (*TASK_KEYS, *OUTPUT_KEYS):
        if key in data:
            _check_type(source, key, data[key], types[key])
    return Experiment(
        task=TaskSpec(**{k: data[k] for k in TASK_KEYS if k in data}),
        options=command_options({k: data[k] for k in option_keys if k in data}, source, flags),
        **{k: data[k] for k in OUTPUT_KEYS if k in data},
    )


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


def _check_type(source: str, key: str, value: Any, annotation: str) -> None:
    allowed = {
        "str": (str,),
        "str | None": (str, type(None)),
        "int": (int,),
        "int | None": (int, type(None)),
        "float | None": (int, float, type(None)),
        "list | str | None": (list, str, type(None)),
    }[annotation]
    if isinstance(value, bool) or not isinstance(value, allowed):
        expected = annotation.replace(" | None", " or null").replace(" | ", " or ")
        raise ConfigError(f"{source}: the key {key!r} must be {expected}. Got {value!r} instead.")


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


def build_task(spec: TaskSpec, log=print) -> Task:
    """The Task ``spec`` names: a built-in task (``digits`` with a zoo model or the
    user's ``module:factory``; ``imagefolder`` or ``tensors`` over the user's files with the
    user's model) or the user's own ``module:attr`` Task."""
    from autoquant.tasks.files import imagefolder_task, tensors_task
    from autoquant.tasks.metrics import get_metric

    metric = spec.metric
    if metric is not None:
        metric = get_metric(import_object(metric) if ":" in metric else metric)
    if ":" in spec.task:
        task = load_task(spec.task)
        if spec.model:  # another model on the same data
            model = load_model(spec.model, spec.checkpoint)
            task = dataclasses.replace(task, model=model, model_name=spec.model)
        elif spec.checkpoint:
            load_checkpoint(task.model, spec.checkpoint)
        return dataclasses.replace(task, metric=metric) if metric is not None else task
    if spec.task in ("imagefolder", "tensors"):
        if not spec.model or ":" not in spec.model:
            raise ConfigError(
                f"The {spec.task!r} task needs your model as 'module:factory' (--model). "
                f"Got {spec.model!r} instead."
            )
        if not spec.data:
            raise ConfigError(
                f"The {spec.task!r} task needs the data's path (--data): "
                + (
                    "a folder of class subfolders of images."
                    if spec.task == "imagefolder"
                    else "a file of tensors saved with torch.save."
                )
            )
        model = load_model(spec.model, spec.checkpoint)
        if spec.task == "tensors":
            return tensors_task(model, spec.data, metric=metric, model_name=spec.model)
        sizes = {k: v for k, v in (("resize", spec.resize), ("crop", spec.crop)) if v}
        norms = {k: _floats(v, k) for k, v in (("mean", spec.mean), ("std", spec.std)) if v}
        return imagefolder_task(
            model, spec.data, metric=metric, model_name=spec.model, **sizes, **norms
        )
    name = spec.model or DEFAULT_ZOO_MODEL
    if ":" not in name:
        if name not in ZOO and spec.checkpoint is None:
            raise ConfigError(
                f"The 'model' setting must be a zoo model {list(ZOO)} or 'module:factory'. "
                f"Got {name!r} instead."
            )
        task = get_task(spec.task, name, log=log)
        if spec.checkpoint:
            load_checkpoint(task.model, spec.checkpoint)
    else:
        model = load_model(name, spec.checkpoint)
        task = get_task(spec.task, model, model_name=name, log=log)
    return dataclasses.replace(task, metric=metric) if metric is not None else task
