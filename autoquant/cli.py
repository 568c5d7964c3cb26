"""The ``autoquant`` command: one verb per job, each parsing its flags and calling the library.

Every verb exits 0 when done, 2 on bad input (the message says what and how to fix it), 3 when
no configuration meets the budget, 1 on any other failure (one line; the traceback goes to a
file, or to the terminal with ``--debug``), 130 when interrupted. A verb leaves what it has to
show in ``args.result`` (printed as JSON with ``--json``) and ``args.summary`` (the one line
``--quiet`` prints).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
from collections.abc import Iterator, Sequence

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INFEASIBLE = 3
EXIT_INTERRUPTED = 130


TASK_HELP = (
    "built-in task (digits, imagefolder, tensors) or your own module:attr (a Task, or a "
    "function returning one); default digits"
)


def _add_task_options(parser: argparse.ArgumentParser) -> None:
    from autoquant.tasks import zoo_models

    parser.add_argument("--task", default="digits", help=TASK_HELP)
    parser.add_argument(
        "--model", help=f"zoo model ({', '.join(zoo_models())}; default resnet18) or module:factory"
    )
    parser.add_argument("--checkpoint", help="state_dict file, loaded with weights_only=True")
    _add_data_options(parser)
    _add_scenario_option(parser, "batch size and threads")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    """The options of the built-in tasks over the user's files, and the metric."""
    from autoquant.tasks.metrics import METRICS

    parser.add_argument(
        "--data", help="imagefolder: a folder of class subfolders; tensors: a torch.save file"
    )
    parser.add_argument(
        "--metric",
        help=f"a built-in metric ({', '.join(METRICS)}) or module:attr (default: top1 with "
        "targets, cosine to float's outputs without)",
    )
    parser.add_argument("--resize", type=int, help="imagefolder: shorter side (default 256)")
    parser.add_argument("--crop", type=int, help="imagefolder: center crop (default 224)")
    parser.add_argument("--mean", help="imagefolder: per-channel mean (default ImageNet's)")
    parser.add_argument("--std", help="imagefolder: per-channel std (default ImageNet's)")


def _add_scenario_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--scenario",
        default="bs1-t1",
        help=f"{help}: bs{{N}}-t{{M}} (N examples a call on M threads; default bs1-t1), "
        "optionally ending in -compiled",
    )


def _task_for(args: argparse.Namespace):
    from autoquant.errors import ConfigError
    from autoquant.study.experiment import TASK_KEYS, TaskSpec, build_task

    option = getattr(args, "model_option", None)
    if option and args.model and option != args.model:
        raise ConfigError(
            f"Two models were given: {args.model!r} and --model {option!r}. Give one."
        )
    settings = {k: getattr(args, k, None) for k in TASK_KEYS}
    settings["model"] = option or settings["model"]
    return build_task(TaskSpec(**settings))


def cmd_demo(args: argparse.Namespace) -> int:
    """Quantize the default zoo model with the fixed configs and print the measurements."""
    from autoquant.measure import get_scenario
    from autoquant.recommend.recipes import DEMO_CONFIGS, measure_configs
    from autoquant.report.tables import METRIC_COLUMNS, format_table, metrics_row

    task = _task_for(args)
    scenario = get_scenario(args.scenario)
    print(
        f"{task.name} / {task.model_name}, scenario {scenario.name}: measuring {len(DEMO_CONFIGS)} "
        f"fixed configurations on the validation split"
    )
    rows = []

    def show(outcome):
        print(f"  {outcome.label}: " + ("done" if outcome.metrics else outcome.error))
        rows.append(
            metrics_row(outcome.label, outcome.metrics)
            if outcome.metrics
            else {"candidate": outcome.label, "accuracy": "failed"}
        )

    measure_configs(task, DEMO_CONFIGS, scenario, on_done=show)
    print()
    print(format_table(rows, METRIC_COLUMNS))
    args.summary = f"measured {len(rows)} configurations of {task.model_name}"
    return EXIT_OK


def cmd_methods(args: argparse.Namespace) -> int:
    """Print the methods, observers, backends and the capability table."""
    from autoquant.engine.backends import BACKENDS
    from autoquant.engine.methods import available_methods, capabilities, get_method
    from autoquant.engine.methods.base import TORCH_AO_CANNOT_COMPILE
    from autoquant.engine.observers import ACTIVATION_OBSERVERS, WEIGHT_OBSERVERS
    from autoquant.report.tables import format_table

    print(
        format_table(
            [
                {
                    "method": m,
                    "engine": get_method(m).engine,
                    "torch.compile": get_method(m).compile_support,
                    "what it does": get_method(m).summary,
                }
                for m in available_methods()
            ],
            ["method", "engine", "torch.compile", "what it does"],
        )
    )
    print(f"torch.compile 'no': {TORCH_AO_CANNOT_COMPILE}.")
    print()
    print(format_table([{"backend": b, "for": d} for b, d in BACKENDS.items()], ["backend", "for"]))
    print()
    print("activation observers:", ", ".join(ACTIVATION_OBSERVERS))
    print("weight observers:", ", ".join(WEIGHT_OBSERVERS))
    print()
    rows = [
        {**row, "supported": "yes" if row["supported"] else "no"}
        for row in capabilities()
        if row["method"] != "fp32"
    ]
    print(format_table(rows, ["method", "engine", "backend", "supported", "note"]))
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    """Search quantization configs under an accuracy-drop budget and recommend the best."""
    import dataclasses
    from pathlib import Path

    from autoquant.errors import ConfigError
    from autoquant.report.tables import (
        METRIC_COLUMNS,
        finalist_failures,
        finalist_rows,
        format_table,
    )
    from autoquant.study.experiment import OUTPUT_KEYS, TASK_KEYS, build_task, load_experiment
    from autoquant.study.options import key_of, settable_fields
    from autoquant.study.run import open_search

    option_keys = [key_of(f) for f in settable_fields()]
    flags = {key: getattr(args, key, None) for key in (*TASK_KEYS, *OUTPUT_KEYS, *option_keys)}
    experiment = load_experiment(args.experiment, overrides=flags)
    options = experiment.options
    tracker = None
    if not args.no_tracking:
        from autoquant.tracking.tracker import MlflowTracker

        # Made (and the store checked) before any work: an unreachable server fails now.
        tracker = MlflowTracker(experiment.tracking_uri, register=args.register)
    task = build_task(experiment.task)
    storage = options.storage
    if args.force_new and storage and options.study_name:
        options = dataclasses.replace(
            options, study_name=_free_study_name(storage, options.study_name)
        )
    if args.workers > 1 and not storage:
        raise ConfigError("--workers needs --storage: the workers share the study through it.")
    stage = "setup"  # what a Ctrl-C interrupts: setup, trials or the final round
    try:
        session = open_search(
            task,
            options=dataclasses.replace(options, history_uri=experiment.tracking_uri),
            tracker=tracker,
            experiment=dataclasses.asdict(experiment.task),
        )
        stage = "trials"
        workers_failed = False
        try:
            if args.workers > 1:
                workers_failed = not _run_workers(
                    args.workers, storage, session.study.study_name, tracker, options
                )
            else:
                session.run(progress=not args.quiet)
        finally:
            session.runner.close()
        out = Path(experiment.out or Path("autoquant-out") / session.study.study_name)
        if tracker:
            tracker.out_dir = out  # the plots land beside the model, and in MLflow
        stage = "final round"
        rec = session.finish()
    except KeyboardInterrupt:
        if tracker:
            tracker.fail_study("KILLED")
        print(f"\nautoquant: {_interrupted(stage, storage)}", file=sys.stderr)
        return EXIT_INTERRUPTED

    print()
    print(rec.explanation)
    for note in rec.notes:
        print(f"Note: {note}")
    print()
    split = "test" if task.test_data is not None else "validation"
    print(f"Final round on the {split} data, timed head to head ({options.scenario.name}):")
    if rec.timing_conditions:
        print(f"Timed on {rec.timing_conditions}.")
    print(format_table(finalist_rows(rec), METRIC_COLUMNS))
    for line in finalist_failures(rec):
        print(f"  failed: {line}")
    # with MLflow, the tracker wrote the plots beside the model (and logged them)
    paths = rec.save(out, plots=tracker is None)
    if tracker is not None:
        print(
            f"Logged to MLflow ({tracker.uri}), experiment {rec.study_name!r}: "
            f"`autoquant ui` to browse it."
        )
    print(f"\nSaved to {out}/: {', '.join(p.name for p in paths.values())}")
    args.result = {**rec.summary(), "out": str(out), "files": {k: str(p) for k, p in paths.items()}}
    args.summary = (
        f"{rec.config.label()}: {rec.metrics.speedup:.2f}x, drop {rec.budget.drop(rec.metrics):.2f}"
        f" (budget {rec.budget}), saved to {out}"
    )
    if workers_failed:
        return EXIT_ERROR
    if not rec.feasible:
        print(f"No configuration met the budget {rec.budget}; the best effort was saved.")
        args.summary = f"no configuration met the budget {rec.budget}; best effort saved to {out}"
        return EXIT_INFEASIBLE
    return EXIT_OK


def cmd_runs(args: argparse.Namespace) -> int:
    """Print the studies in the MLflow store and their recommendations."""
    from autoquant.report.tables import format_table
    from autoquant.tracking.tracker import studies

    rows = studies(args.tracking_uri)
    args.result = rows
    args.summary = f"{len(rows)} studies"
    if not rows:
        print("No autoquant study in this MLflow store yet: run `autoquant search` first.")
        return EXIT_OK
    columns = [
        "study",
        "model",
        "budget",
        "objective",
        "trials",
        "status",
        "recommendation",
        "feasible",
        "speedup",
        "drop (pt)",
    ]
    print(format_table(rows, columns))
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the MLflow UI on the local tracking store (127.0.0.1, a free port)."""
    from autoquant.tracking.ui import serve

    return serve(args.tracking_uri, port=args.port)


def _interrupted(stage: str, storage: str | None) -> str:
    """What an interrupted search kept, and how to go on."""
    from autoquant.study.run import redact

    if stage == "setup":
        return "interrupted before the first trial; run the same command again to start."
    if not storage:
        return (
            "interrupted. The finished trials were kept only in memory (no --storage): they "
            "are lost."
        )
    if stage == "trials":
        return (
            f"interrupted. The finished trials are kept in {redact(storage)}; run the same "
            f"command again to resume."
        )
    return (
        f"interrupted in the final round. Every trial is kept in {redact(storage)}; run the "
        f"same command again to redo the final round (no trial runs again)."
    )


def _free_study_name(storage: str, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when a study of that name exists (--force-new)."""
    import optuna

    from autoquant.study.run import make_storage

    taken = set(optuna.get_all_study_names(make_storage(storage)))
    if name not in taken:
        return name
    number = 2
    while f"{name}-{number}" in taken:
        number += 1
    print(
        f"A study named {name!r} exists; starting a new one, {f'{name}-{number}'!r} "
        f"(the old one is kept)."
    )
    return f"{name}-{number}"


def _run_workers(count: int, storage: str, study: str, tracker, options) -> bool:
    """Start ``count`` local `autoquant worker` processes on the study and wait for them;
    whether every one of them finished cleanly."""
    import subprocess

    command = [
        sys.executable,
        "-m",
        "autoquant.cli",
        "worker",
        "--storage",
        storage,
        "--study",
        study,
    ]
    command += ["--tracking-uri", tracker.uri] if tracker else ["--no-tracking"]
    command += ["--isolate"] if options.isolate else []
    command += ["--trial-timeout", str(options.trial_timeout)] if options.trial_timeout else []
    print(f"Starting {count} worker processes on study {study!r}")
    workers = [subprocess.Popen(command) for _ in range(count)]
    try:
        codes = [w.wait() for w in workers]
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        raise
    failed = [c for c in codes if c != 0]
    if failed:
        print(
            f"{len(failed)} worker(s) exited with an error (codes {failed}); the trials they "
            f"finished are kept.",
            file=sys.stderr,
        )
    return not failed


def cmd_worker(args: argparse.Namespace) -> int:
    """Join a study started by `autoquant search` and run its trials (any machine)."""
    from autoquant.study.run import join_search

    tracker = None
    if not args.no_tracking:
        from autoquant.tracking.tracker import MlflowTracker

        tracker = MlflowTracker(args.tracking_uri)
    session = join_search(
        args.storage,
        args.study,
        tracker=tracker,
        trial_timeout=args.trial_timeout,
        isolate=args.isolate,
    )
    try:
        ran = session.run(progress=False, shared=True)
    finally:
        session.runner.close()
    args.summary = (
        f"worker done: ran {ran} trial(s); the study {args.study!r} holds "
        f"{session.finished_trials()} finished trials."
    )
    print(args.summary)
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    """Show a model's quantizable layers, traceability, applicable methods, latency and size."""
    import dataclasses

    from autoquant.measure import example_batch
    from autoquant.measure.inspect import inspect

    task = _task_for(args)
    report = inspect(task.model, example_batch(task.validation_data, 1, task))
    args.summary = f"{task.model_name}: {len(report.layers)} quantizable layers"
    print(args.summary)
    print(report.table())
    args.result = {"model": task.model_name, **dataclasses.asdict(report)}
    return EXIT_OK


def cmd_recommend(args: argparse.Namespace) -> int:
    """Suggest a configuration in seconds, without a search: expert rules or past studies."""
    import dataclasses
    import time

    from autoquant.engine.budget import Budget
    from autoquant.measure import example_batch, get_scenario
    from autoquant.measure.inspect import inspect
    from autoquant.recommend.prior import Candidate, best_estimate, estimate, prior_candidates
    from autoquant.report.tables import format_table
    from autoquant.study.space import load_space

    started = time.perf_counter()
    budget = Budget.parse(args.budget)
    scenario = get_scenario(args.scenario)
    task = _task_for(args)
    # the space says which runtimes are candidates (ONNX Runtime only where it holds them)
    space = load_space(args.space)
    report = inspect(task.model, example_batch(task.validation_data, 1, task), space.methods)
    candidates = prior_candidates(
        report, budget, target=args.target, batch_size=scenario.batch_size
    )
    if args.from_history:
        from autoquant.study.history import alternate, history_candidates

        ranked, studies = history_candidates(
            report.features,
            space,
            budget,
            tracking_uri=args.tracking_uri,
            exclude_model=task.model_name,
            scenario=scenario.name,
            exclude=[c.config for c in candidates[:3]],
        )
        if studies:
            print(f"Learned from past studies: {', '.join(studies)}")
        else:
            print("Too little history in the MLflow store (fewer than 5 trials): using the rules.")
        learned = [
            Candidate(c, f"predicted from past studies: drop {d:.2f}pt, speedup {s:.2f}x")
            for c, d, s in ranked
        ]
        # Three of each keep the estimate within seconds; repeats are measured once.
        unique = {}
        for candidate in alternate(candidates[:3], learned):
            unique.setdefault(candidate.config.canonical().to_json(), candidate)
        candidates = list(unique.values())
    estimates = estimate(task, candidates, scenario, budget)
    rows = [
        {
            "candidate": e.config.label(),
            "est. speedup": f"{e.speedup:.2f}x" if e.speedup else "-",
            "est. size": f"{e.size_ratio:.2f}" if e.size_ratio else "-",
            "est. drop": f"{e.drop:.2f}" if e.drop is not None else "-",
            "why": e.reason if not e.error else f"failed: {e.error[:80]}",
        }
        for e in estimates
    ]
    print(format_table(rows, ["candidate", "est. speedup", "est. size", "est. drop", "why"]))
    best = best_estimate(estimates, budget)
    print()
    args.result = {
        "model": task.model_name,
        "budget": str(budget),
        "scenario": scenario.name,
        "estimates": [{**dataclasses.asdict(e), "label": e.config.label()} for e in estimates],
        "suggestion": None
        if best is None
        else {**dataclasses.asdict(best), "label": best.config.label()},
    }
    if best is None:
        args.summary = f"No candidate held the budget {budget} in the quick estimate: run a search."
        print(args.summary)
    else:
        args.summary = f"Suggestion: {best.config.label()} ({best.reason})"
        print(args.summary)
        print(f"config: {best.config.to_json()}")
    print(
        f"(estimates from a quick measurement on 2 validation batches at {scenario.name}, "
        f"{time.perf_counter() - started:.1f} s; `autoquant search` measures properly)"
    )
    return EXIT_OK if best is not None else EXIT_INFEASIBLE


def _add_trial_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trial-timeout",
        type=float,
        help="seconds after which a trial is stopped and recorded as failed",
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="evaluate trials in a worker process: a crash costs one trial",
    )


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """One flag per SearchOptions setting, named, typed and explained by the field itself;
    absent flags stay None, so the experiment file (then the default) decides."""
    from autoquant.study.experiment import COMMAND_DEFAULTS
    from autoquant.study.options import key_of, settable_fields

    for field in settable_fields():
        key = key_of(field)
        default = COMMAND_DEFAULTS.get(key, field.default)
        shown = ("on" if default else "off") if isinstance(default, bool) else default
        help = field.metadata["help"] + (f" (default {shown})" if shown is not None else "")
        kwargs: dict = {"help": help}
        if isinstance(field.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = field.metadata.get("type", str)
            kwargs["choices"] = field.metadata.get("choices")
        parser.add_argument("--" + key.replace("_", "-"), default=None, **kwargs)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", help="zoo model name or module:factory")
    # the same option as on search and demo; the positional form is kept for short commands
    parser.add_argument("--model", dest="model_option", help="zoo model name or module:factory")
    parser.add_argument("--task", default="digits", help=TASK_HELP)
    parser.add_argument("--checkpoint", help="state_dict file, loaded with weights_only=True")
    _add_data_options(parser)


def _verb(verbs, name: str, run, parents: list) -> argparse.ArgumentParser:
    """The parser of the verb ``name``, run by ``run``, whose docstring is its help."""
    parser = verbs.add_parser(name, parents=parents, help=run.__doc__, description=run.__doc__)
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoquant",
        description="Find the fastest or smallest quantized PyTorch model within an "
        "accuracy-drop budget.",
        epilog="exit codes (every command): 0 done, 2 bad input, 3 no configuration met the "
        "budget, 1 any other failure, 130 interrupted",
    )
    from importlib.metadata import version

    parser.add_argument("--version", action="version", version=f"autoquant {version('autoquant')}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.required = True
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors and a one-line result"
    )
    common.add_argument(
        "--debug", action="store_true", help="show the traceback of an unexpected error"
    )
    machine = argparse.ArgumentParser(add_help=False)
    machine.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout (the rest on stderr)",
    )

    demo = _verb(verbs, "demo", cmd_demo, [common])
    _add_task_options(demo)

    search = _verb(verbs, "search", cmd_search, [common, machine])
    search.add_argument("experiment", nargs="?", help="experiment YAML file (flags override it)")
    search.add_argument("--task", help=TASK_HELP)
    search.add_argument("--model", help="zoo model name or module:factory (default resnet18)")
    search.add_argument("--checkpoint", help="state_dict file, loaded with weights_only=True")
    _add_data_options(search)
    _add_search_options(search)
    search.add_argument("--out", help="output folder (default autoquant-out/STUDY)")
    search.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )
    search.add_argument("--register", help="register the recommended model under this name")
    search.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    search.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes sharing the study (needs --storage)",
    )
    search.add_argument(
        "--force-new",
        action="store_true",
        help="start a new study if one of this name exists (the old is kept)",
    )

    inspect = _verb(verbs, "inspect", cmd_inspect, [common, machine])
    _add_model_options(inspect)

    recommend = _verb(verbs, "recommend", cmd_recommend, [common, machine])
    _add_model_options(recommend)
    recommend.add_argument("--budget", default="1pt", help="largest drop (default 1pt)")
    recommend.add_argument("--target", default="server", choices=["server", "mobile"])
    _add_scenario_option(
        recommend, "the deployment to suggest for and estimate at (default bs1-t1)"
    )
    recommend.add_argument(
        "--from-history",
        action="store_true",
        help="rank with a model learned from past studies in MLflow",
    )
    recommend.add_argument(
        "--space",
        default="default",
        help="space the candidates come from ('runtimes' or 'onnx' adds ONNX Runtime's) and the "
        "history ranks in",
    )
    recommend.add_argument("--tracking-uri", help="MLflow store with the past studies")

    worker = _verb(verbs, "worker", cmd_worker, [common])
    worker.add_argument(
        "--storage",
        required=True,
        help="the study's storage, e.g. postgresql+psycopg2://user:pw@host/db",
    )
    worker.add_argument("--study", required=True, help="the study name")
    worker.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db)")
    worker.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    _add_trial_options(worker)

    runs = _verb(verbs, "runs", cmd_runs, [common, machine])
    runs.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db)")

    ui = _verb(verbs, "ui", cmd_ui, [common])
    ui.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///mlflow.db)")
    ui.add_argument("--port", type=int, help="port (default: a free one)")

    _verb(verbs, "methods", cmd_methods, [common])
    return parser


def reference() -> str:
    """The CLI reference in Markdown, from the parser itself (``docs/cli.md``; ``make docs``
    writes it, and a test fails when the file and the parser disagree)."""
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# The `autoquant` command\n",
        "Generated from the parser by `make docs`; do not edit by hand.\n",
        f"```text\n{_help(parser)}```\n",
    ]
    for name, verb in verbs.choices.items():
        parts.append(f"## autoquant {name}\n\n```text\n{_help(verb)}```\n")
    return "\n".join(parts)


def _help(parser: argparse.ArgumentParser) -> str:
    # a fixed width: the file must not depend on the terminal it was generated in
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    return parser.format_help()


def main(argv: Sequence[str] | None = None) -> int:
    from autoquant._warnings import quiet
    from autoquant.errors import AutoQuantError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)  # a usage error exits 2 here, with argparse's message
    args.argv = argv  # the command line as given, for reports that say how to rerun them
    args.result, args.summary = None, None
    stdout = sys.stdout
    try:
        with quiet(), _verb_output(args):  # quiet(): torch.ao's deprecation noise
            code = args.run(args)
    except AutoQuantError as err:
        print(f"autoquant: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("autoquant: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - one line for the user, the traceback in a file
        if args.debug:
            raise
        print(
            f"autoquant: unexpected error: {type(err).__name__}: {str(err).strip()[:300]}\n"
            f"The full traceback is in {_write_traceback()}; rerun with --debug to see it here.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if getattr(args, "json", False):
        print(json.dumps(_finite(args.result), indent=2, default=_jsonable), file=stdout)
    elif args.quiet and args.summary:
        print(args.summary, file=stdout)
    return code


@contextlib.contextmanager
def _verb_output(args: argparse.Namespace) -> Iterator[None]:
    """Where a verb's own lines go: the terminal; stderr with --json (stdout holds the JSON
    alone); nowhere with --quiet (the summary is printed after)."""
    if getattr(args, "json", False):
        with contextlib.redirect_stdout(sys.stderr):
            yield
    elif args.quiet:
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            if args.verb in ("search", "worker", "runs", "ui") and not getattr(
                args, "no_tracking", False
            ):
                from autoquant.tracking.tracker import quiet_mlflow_logs

                stack.enter_context(quiet_mlflow_logs())
            yield
    else:
        yield


def _finite(value):
    """``value`` with NaN and infinite floats as None: strict JSON has no such numbers (an
    SQNR is infinite when a candidate's outputs equal float's)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value):
    return value.to_dict() if hasattr(value, "to_dict") else str(value)


def _write_traceback() -> str:
    import tempfile
    import traceback

    with tempfile.NamedTemporaryFile(
        "w", prefix="autoquant-traceback-", suffix=".txt", delete=False
    ) as file:
        traceback.print_exc(file=file)
    return file.name


if __name__ == "__main__":
    sys.exit(main())
