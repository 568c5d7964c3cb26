"""Soak test: many short trials, several worker processes, injected failures; nothing lost.

    .venv/bin/python experiments/soak.py                     # 200 trials, 4 workers, sqlite
    .venv/bin/python experiments/soak.py --postgres          # the same on a local PostgreSQL

A coordinator creates the study (mlp zoo model, `default` space); the workers are this script
in worker mode, where 10% of the trials raise an injected error and 5% of the evaluations
return NaN outputs. At the end every trial must be finished exactly once, every failure must
carry its reason, and MLflow must hold one child run per trial. Writes experiments/SOAK.md.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.postgres, for --postgres


def worker(args) -> None:
    import torch

    import autoquant.study.run as search_module
    import autoquant.study.trial as trial_module
    from autoquant.study.run import join_search
    from autoquant.tracking.tracker import MlflowTracker

    evaluate = trial_module.Evaluator.__call__
    rng = random.Random()

    def flaky(self, config):
        roll = rng.random()
        if roll < args.fail_rate:
            raise RuntimeError("injected failure")
        if roll < args.fail_rate + args.nan_rate:
            model = self.task.model
            self.task.model = torch.nn.Sequential(model, _NaN())
            try:
                return evaluate(self, config)
            finally:
                self.task.model = model
        return evaluate(self, config)

    repeat = search_module.Objective._repeat

    def flaky_repeat(self, trial, earlier):
        # most trials of a long study repeat a configuration: inject failures there too
        if rng.random() < args.fail_rate:
            raise RuntimeError("injected failure")
        return repeat(self, trial, earlier)

    trial_module.Evaluator.__call__ = flaky
    search_module.Objective._repeat = flaky_repeat
    session = join_search(
        args.storage, args.study, tracker=MlflowTracker(args.tracking_uri), log=lambda _: None
    )
    ran = session.run(progress=False, shared=True)
    print(f"worker ran {ran} trials", flush=True)


class _NaN(__import__("torch").nn.Module):
    def forward(self, x):
        return x * float("nan")


def coordinate(args, storage: str) -> None:
    import mlflow
    import optuna

    from autoquant.study.run import open_search
    from autoquant.tasks import digits_task
    from autoquant.tracking.record import run_tag
    from autoquant.tracking.tracker import MlflowTracker

    folder = Path(tempfile.mkdtemp(prefix="autoquant-soak-"))
    tracking = f"sqlite:///{folder}/mlflow.db"
    study_name = f"soak-{int(time.time())}"
    session = open_search(
        digits_task("mlp"),
        "1pt",
        "default",
        n_trials=args.trials,
        storage=storage,
        study_name=study_name,
        tracker=MlflowTracker(tracking),
        experiment={"task": "digits", "model": "mlp", "checkpoint": None},
        log=print,
    )
    started = time.perf_counter()
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--storage",
        storage,
        "--study",
        study_name,
        "--tracking-uri",
        tracking,
        "--fail-rate",
        str(args.fail_rate),
        "--nan-rate",
        str(args.nan_rate),
    ]
    workers = [subprocess.Popen(command) for _ in range(args.workers)]
    codes = [w.wait() for w in workers]
    wall = time.perf_counter() - started
    recommendation = session.finish()  # ends the study's parent run

    trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    states = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    failed = [t for t in trials if t.state.name == "FAIL"]
    injected = sum("injected failure" in t.user_attrs.get("failure", "") for t in failed)
    nan = sum("NaN" in t.user_attrs.get("failure", "") for t in failed)
    unexplained = [t.number for t in failed if "failure" not in t.user_attrs]
    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(
        experiment_names=[study_name], output_format="list", max_results=10000
    )
    children = [
        int(r.data.tags[run_tag("trial")])
        for r in runs
        if r.data.tags.get(run_tag("role")) == "trial"
    ]
    checks = {
        "workers exited 0": all(c == 0 for c in codes),
        f"at least {args.trials} trials": len(trials) >= args.trials,
        "every trial finished (none RUNNING or WAITING)": all(
            t.state.is_finished() for t in trials
        ),
        "trial numbers unique and contiguous": sorted(t.number for t in trials)
        == list(range(len(trials))),
        "every failure has its reason": not unexplained,
        "one MLflow child run per trial": sorted(children) == sorted(t.number for t in trials),
        "no MLflow run left RUNNING": all(r.info.status != "RUNNING" for r in runs),
    }
    lines = [
        "# Soak test",
        "",
        f"{len(trials)} trials, {args.workers} worker processes, storage "
        f"{'PostgreSQL' if storage.startswith('postgresql') else 'SQLite'}, injected failure "
        f"rate {args.fail_rate:.0%} per trial and NaN rate {args.nan_rate:.0%} per evaluation; "
        f"{wall:.0f} s wall time. Command: `.venv/bin/python experiments/soak.py"
        f"{' --postgres' if storage.startswith('postgresql') else ''}`",
        "",
        f"Trial states: {states}. Failed: {injected} injected errors, {nan} NaN outputs "
        f"(duplicates of a failed configuration are retried, so counts differ from the rates).",
        "",
        f"Recommendation from the {len(trials)} trials: {recommendation.config.label()}.",
        "",
        "| check | result |",
        "|---|---|",
        *[f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in checks.items()],
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    if not all(checks.values()):
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--postgres", action="store_true", help="run on a throwaway local PostgreSQL server"
    )
    parser.add_argument("--fail-rate", type=float, default=0.10)
    parser.add_argument("--nan-rate", type=float, default=0.05)
    parser.add_argument("--out", default=str(HERE / "SOAK.md"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--study", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        worker(args)
    elif args.postgres:
        from tests.postgres import local_postgres

        with local_postgres() as url:
            coordinate(args, url)
    else:
        folder = tempfile.mkdtemp(prefix="autoquant-soak-db-")
        coordinate(args, f"sqlite:///{folder}/optuna.db")


if __name__ == "__main__":
    main()
