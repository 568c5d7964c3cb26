"""MLflow tracking: one experiment per study, a parent run per study, a child run per trial.

Runs are written through ``MlflowClient`` with explicit run ids (child runs carry
``mlflow.parentRunId``), never through MLflow's active-run state, which is per thread: trials
running in parallel threads each log their own run safely.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import optuna
import torch
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from autoquant.engine.data import batch_length, concat, tensors_of
from autoquant.errors import ConfigError
from autoquant.measure.machine import cpu_name
from autoquant.tracking.record import (
    FEATURE_PARAM_PREFIX,
    attributes,
    run_tag,
    run_tags,
    tagged,
    trial_run_metrics,
    trial_run_tags,
)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` (no server needed)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_reachable(uri: str) -> None:
    """Fail now, naming the URI, when the tracking store cannot be used."""
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///") :]).resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ConfigError(
                f"The MLflow tracking URI {uri!r} points into {str(folder)!r}, which does not "
                f"exist or is not writable. Create the folder or pass another --tracking-uri."
            )
    try:
        if uri.startswith(("http://", "https://")):
            # a quick probe: MLflow's client would retry for minutes before giving up (its
            # retries are set by the user's environment, which autoquant leaves alone)
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).close()
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as err:  # noqa: BLE001 - any failure here means "cannot track"
        raise ConfigError(
            f"The MLflow tracking store {uri!r} cannot be reached: "
            f"{str(err).strip().splitlines()[0][:200]}. Start the server, fix the URI "
            f"(--tracking-uri or MLFLOW_TRACKING_URI), or leave both unset to use "
            f"{DEFAULT_TRACKING_URI}."
        ) from None


@contextlib.contextmanager
def _fluent_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``) at ``uri``, then the user's settings back as they
    were: ``mlflow.set_tracking_uri`` also writes ``$MLFLOW_TRACKING_URI`` into the process
    environment, which autoquant must not leave changed."""
    from mlflow.tracking._tracking_service import utils

    previous_uri, previous_env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_uri)
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


def param_value(value: Any) -> str:
    """A param as MLflow stores it: lists as JSON (so they read back), the rest as text."""
    return json.dumps(list(value)) if isinstance(value, (list, tuple)) else str(value)


def machine_info() -> dict[str, str]:
    """CPU model, vector extensions, cores and threads: latency figures mean little without
    them (int8 kernels differ most: AVX2 against AVX512 with VNNI)."""
    return {
        "machine.cpu": cpu_name(),
        "machine.cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine.cores": str(os.cpu_count()),
        "machine.torch_threads": str(torch.get_num_threads()),
        "machine.platform": platform.platform(),
        "version.torch": torch.__version__,
        "version.optuna": optuna.__version__,
        "version.mlflow": mlflow.__version__,
        "version.autoquant": __import__("autoquant").__version__,
    }


class MlflowTracker:
    """Logs a study to MLflow; pass it to ``autoquant.search(tracker=...)``.

    Args:
        tracking_uri: MLflow tracking URI; ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``
            when None. Checked when the tracker is made.
        register: Register the recommended model in the Model Registry under this name.
        out_dir: Where plots are also written (viewable offline); a temporary folder if None.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        register: str | None = None,
        out_dir: str | Path | None = None,
    ) -> None:
        self.uri = resolve_tracking_uri(tracking_uri)
        check_reachable(self.uri)
        self.client = MlflowClient(self.uri)
        self.register = register
        self.out_dir = Path(out_dir) if out_dir else None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._lock = threading.Lock()

    # -- the study ---------------------------------------------------------------------------
    def start_study(self, study: optuna.Study, runner) -> None:
        experiment = self.client.get_experiment_by_name(study.study_name)
        self.experiment_id = (
            experiment.experiment_id
            if experiment
            else self.client.create_experiment(study.study_name)
        )
        existing = self.client.search_runs(
            [self.experiment_id], tagged(role="study"), max_results=1
        )
        if existing:  # a resumed study keeps its parent run
            self.parent_run_id = existing[0].info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
            self.sync(study)
            return
        run = self.client.create_run(
            self.experiment_id,
            run_name=study.study_name,
            tags={
                **standard_tags(),
                **run_tags(role="study", study=study.study_name),
            },
        )
        self.parent_run_id = run.info.run_id
        if getattr(runner, "resolution", ""):
            self.client.set_tag(self.parent_run_id, run_tag("resolution"), runner.resolution)
        task = runner.task
        self.client.log_inputs(self.parent_run_id, datasets=dataset_inputs(task))
        params = {
            "task": task.name,
            "model": task.model_name,
            "budget": str(runner.budget),
            "space": runner.space.name,
            "objective": runner.objective,
            "scenario": runner.scenario.name,
            "seed": runner.seed,
            "float_accuracy": f"{runner.baseline.accuracy:.6f}",
            "metric": task.metric.name,
            "label_free": task.label_free,
            **machine_info(),
            # what the learned ranker (autoquant.study.history) reads about the model
            **{f"{FEATURE_PARAM_PREFIX}{k}": f"{v:.6g}" for k, v in runner.report.features.items()},
        }
        self.client.log_batch(
            self.parent_run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()]
        )
        self.client.log_dict(self.parent_run_id, runner.space.to_dict(), "search_space.json")

    def sync(self, study: optuna.Study) -> int:
        """Log a child run for every finished trial that has none: the trial a killed or
        interrupted process was running (failed by Optuna's stale-trial handling) ends up
        KILLED here, never missing or RUNNING. Returns the number of runs added."""
        from autoquant.engine.config import QuantConfig

        runs = self.client.search_runs(
            [self.experiment_id],
            f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}'",
            max_results=50000,
        )
        logged = {
            int(r.data.tags[run_tag("trial")]): r for r in runs if run_tag("trial") in r.data.tags
        }
        added = 0
        states = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
        trials = study.get_trials(deepcopy=False)
        for trial in trials:
            run = logged.get(trial.number)
            if run and run.info.status == "RUNNING" and trial.state.is_finished():
                # the process died while logging this trial: its run can never finish
                self.client.set_tag(run.info.run_id, run_tag("state"), "killed")
                self.client.set_terminated(run.info.run_id, "KILLED")
        for trial in trials:
            if trial.number in logged or trial.state.name not in states:
                continue
            state, reason = states[trial.state.name], None
            if state == "failed" and "failure" not in attributes(trial):
                state = "killed"
                reason = (
                    "the process running this trial stopped (killed or interrupted) "
                    "before it finished"
                )
            config = attributes(trial).get("config")
            self.log_trial(
                trial,
                QuantConfig.from_dict(config) if config else None,
                state=state,
                started=trial.datetime_start.timestamp() if trial.datetime_start else None,
                reason=reason,
            )
            added += 1
        return added

    def log_trial(
        self,
        trial: optuna.Trial | optuna.trial.FrozenTrial,
        config,
        *,
        state: str,
        started: float | None = None,
        reason: str | None = None,
    ) -> str:
        """One child run for a finished trial, whatever its state; returns the run id."""
        attrs = attributes(trial)
        name = f"t{trial.number:03d} {config.label()}" if config else f"t{trial.number:03d}"
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_run_id,
            MLFLOW_RUN_NAME: name,
            **trial_run_tags(trial.number, attrs, state, reason),
        }
        now = int(time.time() * 1000)
        start = int(started * 1000) if started else now
        with self._lock:
            run = self.client.create_run(
                self.experiment_id,
                start_time=start,
                tags={**standard_tags(), **tags},
                run_name=name,
            )
            run_id = run.info.run_id
            params = [
                Param(k, param_value(v)) for k, v in (config.to_dict() if config else {}).items()
            ]
            logged = [Metric(k, v, now, 0) for k, v in trial_run_metrics(attrs).items()]
            self.client.log_batch(run_id, metrics=logged, params=params)
            files = {"config.json": config.to_dict()} if config else {}
            if "layer_map" in attrs:
                files["layer_map.json"] = attrs["layer_map"]
            if files:
                self._log_json(run.info.artifact_uri, files)
            self.client.set_terminated(run_id, STATUS[state], end_time=now)
        return run_id

    def _log_json(self, artifact_uri: str, files: dict[str, Any]) -> None:
        # One write of a trial's files to the location create_run returned: the client's
        # log_dict looks the run up again first (measured: 6 ms of a trial's 27 ms).
        repo = get_artifact_repository(artifact_uri, tracking_uri=self.uri)
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_text(json.dumps(data, indent=2))
            repo.log_artifacts(tmp)

    def finish_study(self, study: optuna.Study, rec, example: torch.Tensor | None = None) -> str:
        """Log the recommendation (config, metrics, explanation, model, plots) on the parent
        run and end it. Returns the logged model's URI ("" when MLflow cannot hold the model:
        the run's tag ``autoquant.model_not_logged`` says why)."""
        from autoquant.engine.export import (
            ONNX_FILE,
            compile_note,
            deploys_compiled,
            is_exported,
            runs_in_onnx_runtime,
            save,
            to_torchscript,
        )
        from autoquant.report.plots import save_plots

        run_id = self.parent_run_id
        now = int(time.time() * 1000)
        metrics = {
            f"recommended_{k}": v
            for k, v in rec.metrics.to_dict().items()
            if isinstance(v, (int, float))
        }
        if rec.test_metrics:
            metrics.update(
                {
                    f"test_{k}": v
                    for k, v in rec.test_metrics.to_dict().items()
                    if isinstance(v, (int, float))
                }
            )
        metrics.update({f"trials_{k}": v for k, v in rec.counts.items()})
        metrics["search_seconds"] = rec.search_seconds
        metrics["pruning_saved_seconds"] = rec.pruning_saved_seconds
        tags = run_tags(
            recommendation=rec.config.label(),
            feasible=str(rec.feasible).lower(),
            explanation=rec.explanation[:5000],
            timing=rec.timing_conditions,
            **({"busy": rec.timing_warning[:5000]} if rec.timing_warning else {}),
        )
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        self.client.log_dict(run_id, rec.config.to_dict(), "recommendation/config.json")
        self.client.log_text(run_id, rec.explanation, "recommendation/explanation.md")
        if deploys_compiled(rec.config):
            self.client.log_text(run_id, compile_note(rec.config), "recommendation/compile.md")
        if example is None:
            example = next(iter(rec.model.parameters()), torch.zeros(1)).new_zeros(1)
        with tempfile.TemporaryDirectory() as tmp:
            save(rec.model, tmp, example)
            self.client.log_artifact(run_id, str(Path(tmp) / "state_dict.pt"), "recommendation")
            plots_dir = self.out_dir or Path(tmp) / "plots"
            for path in save_plots(rec, plots_dir):
                self.client.log_artifact(run_id, str(path), "plots")
            onnx_file = Path(tmp) / ONNX_FILE
            onnx_bytes = onnx_file.read_bytes() if onnx_file.is_file() else None
            saved = json.loads((Path(tmp) / "config.json").read_text())
        in_onnx = runs_in_onnx_runtime(rec.config)
        if onnx_bytes is None:  # no ONNX form (torch.ao's quantized modules), or no onnx
            why = saved.get("onnx", {}).get("error", "no model.onnx was written")
            self.client.set_tag(run_id, run_tag("onnx_model_not_logged"), why[:5000])
        elif not in_onnx:  # beside the PyTorch model
            try:
                uri = self._log_onnx(run_id, onnx_bytes, "onnx_model", register=False)
                self.client.set_tag(run_id, run_tag("onnx_model_uri"), uri)
            except Exception as err:  # noqa: BLE001 - the PyTorch model is still logged
                reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
                self.client.set_tag(run_id, run_tag("onnx_model_not_logged"), reason)
        try:
            if in_onnx:
                model_uri = self._log_onnx(run_id, onnx_bytes, "model", register=True)
            elif is_exported(rec.config):
                model_uri = self._log_exported(run_id, rec.model.module, example)
            else:
                model_uri = self._log_model(run_id, to_torchscript(rec.model, example), example)
        except Exception as err:  # noqa: BLE001 - the study's record matters more than the file
            # Neither MLflow format holds every model (a dataclass output, keyword inputs for
            # pt2): the weights and config are logged above, and the run says why.
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
            self.client.set_tag(run_id, run_tag("model_not_logged"), reason)
            model_uri = ""
        else:
            self.client.set_tag(run_id, run_tag("model_uri"), model_uri)
        self.client.set_terminated(run_id, "FINISHED")
        return model_uri

    def _log_model(self, run_id: str, scripted, example: Any) -> str:
        # TorchScript with the pickle format: MLflow's default pt2 format cannot hold torch.ao
        # quantized models. Requirements are given so MLflow does not spend seconds inferring.
        import mlflow.pytorch

        # MLflow warns that pickle-format models run code when loaded; TorchScript is the only
        # format that holds these models, and autoquant says so in its docs.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        with _fluent_tracking_uri(self.uri), mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(
                scripted,
                name="model",
                serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                input_example=_numpy_example(example),
                registered_model_name=self.register,
            )
        return info.model_uri

    def _log_onnx(self, run_id: str, onnx_bytes: bytes, name: str, *, register: bool) -> str:
        # MLflow's onnx flavor: mlflow.onnx.load_model gives the ModelProto back, and
        # mlflow.pyfunc runs it in ONNX Runtime on the CPU.
        import mlflow.onnx
        import onnx
        import onnxruntime

        with _fluent_tracking_uri(self.uri), mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(
                onnx.load_from_string(onnx_bytes),
                name=name,
                pip_requirements=[
                    f"onnx=={onnx.__version__}",
                    f"onnxruntime=={onnxruntime.__version__}",
                ],
                onnx_execution_providers=["CPUExecutionProvider"],
                registered_model_name=self.register if register else None,
            )
        return info.model_uri

    def _log_exported(self, run_id: str, module, example: Any) -> str:
        # torchao models: MLflow's default pt2 format (torch.export) holds them; torchao is a
        # requirement of the logged model, its operators are in the graph.
        import mlflow.pytorch
        import torchao

        batch = example if batch_length(example) > 1 else concat([example, example])
        with _fluent_tracking_uri(self.uri), mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(
                module,
                name="model",
                serialization_format="pt2",
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"torchao=={torchao.__version__}",
                ],
                input_example=_numpy_example(batch),
                registered_model_name=self.register,
            )
        return info.model_uri

    def fail_study(self, status: str = "KILLED") -> None:
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status)


@contextlib.contextmanager
def quiet_mlflow_logs() -> Iterator[None]:
    """MLflow's INFO lines (creating its database) held back, for ``--quiet``. MLflow sets
    its loggers' levels when imported (here, at the top), so this comes after."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def study_runs(tracking_uri: str | None = None, trial_filter: str = ""):
    """Yield (experiment, parent run, child runs) for every autoquant study in the store;
    ``trial_filter`` narrows the child runs (an MLflow filter clause)."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = MlflowClient(uri)
    for experiment in client.search_experiments():
        runs = client.search_runs([experiment.experiment_id], tagged(role="study"))
        for run in runs:
            query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run.info.run_id}'"
            children = client.search_runs(
                [experiment.experiment_id],
                f"{query} and {trial_filter}" if trial_filter else query,
                max_results=50000,
            )
            yield experiment, run, children


def studies(tracking_uri: str | None = None) -> list[dict[str, Any]]:
    """The studies in the store, with their recommendation: for ``autoquant runs``."""
    return [
        {
            "study": experiment.name,
            "model": run.data.params.get("model", ""),
            "budget": run.data.params.get("budget", ""),
            "objective": run.data.params.get("objective", ""),
            "trials": len(children),
            "status": run.info.status,
            "recommendation": run.data.tags.get(run_tag("recommendation"), ""),
            "feasible": run.data.tags.get(run_tag("feasible"), ""),
            "speedup": _fmt(run.data.metrics.get("recommended_speedup"), "{:.2f}x"),
            "drop (pt)": _fmt(run.data.metrics.get("recommended_drop_points"), "{:.2f}"),
            "experiment_id": experiment.experiment_id,
        }
        for experiment, run, children in study_runs(tracking_uri)
    ]


def _fmt(value, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


__all__ = ["MlflowTracker", "check_reachable", "resolve_tracking_uri", "studies"]


def _numpy_example(example: Any) -> Any:
    """The model inputs as MLflow's input example takes them: an array, or a dict of arrays;
    None for positional arguments, which it cannot hold."""
    if isinstance(example, torch.Tensor):
        return example.numpy()
    if isinstance(example, dict):
        return {k: v.numpy() for k, v in example.items() if isinstance(v, torch.Tensor)}
    if isinstance(example, (tuple, list)) and all(isinstance(v, torch.Tensor) for v in example):
        return tuple(v.numpy() for v in example)
    return None


def standard_tags() -> dict[str, str]:
    """MLflow's own source and user tags (``create_run`` does not add them), so the UI shows
    where each run came from."""
    from mlflow.tracking.context.registry import resolve_tags

    return resolve_tags()


#: The task's data sets, logged as run inputs with their split as context.
SPLITS = {
    "calibration_data": "calibration",
    "validation_data": "validation",
    "test_data": "test",
    "train_data": "train",
}


def dataset_inputs(task) -> list[DatasetInput]:
    """Each data set of ``task`` as an MLflow run input: its name, a digest of its tensors,
    its number of examples and its split."""
    import hashlib

    inputs = []
    for attribute, split in SPLITS.items():
        data = getattr(task, attribute)
        if data is None:
            continue
        digest, examples = hashlib.sha256(), 0
        for batch in data:
            examples += batch_length(task.adapter.inputs(batch))
            for tensor in tensors_of(batch):
                digest.update(str(tuple(tensor.shape)).encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        dataset = Dataset(
            name=f"{task.name}-{split}",
            digest=digest.hexdigest()[:16],
            source_type="autoquant",
            source=json.dumps({"task": task.name, "split": split}),
            profile=json.dumps({"num_examples": examples}),
        )
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", split)]))
    return inputs
