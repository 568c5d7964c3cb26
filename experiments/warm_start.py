"""Does the prior (rules, or a model learned from past studies) find good configurations sooner?

Part A, for each zoo model (budget 1 point, `default` space, same seed): a study warm-started
by the expert rules against a study with no warm start: trials to the first configuration within
budget, and the final recommendation.
Part B: for each of ``--history-targets``, a ranker learned from the part-A studies of the other
models warm-starts a study on it; trials to reach 95% of the best speedup, against the
rules-only study of part A (same seed). The rules studies and part B's studies are logged to
two MLflow stores in a temporary folder, printed at the start, for review (`autoquant ui`).

    .venv/bin/python experiments/warm_start.py            # writes experiments/WARM_START.md
    .venv/bin/python experiments/warm_start.py --trials 8 --models mlp cnn lstm transformer
    # WARM_START.md as committed (about 50 min on 2 cores):
    .venv/bin/python experiments/warm_start.py --scenario bs64-t2 \
        --models mlp lstm cnn cnn_outliers transformer mobilenet_v2 resnet18 \
        --history-targets mlp lstm cnn cnn_outliers transformer mobilenet_v2 resnet18
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import torch

from autoquant.measure import SCENARIOS
from autoquant.recommend.recommendation import Finalist, final_round
from autoquant.report.tables import format_table
from autoquant.study.run import HISTORY_PICKS, HISTORY_STUDIES, search
from autoquant.tasks import digits_task
from autoquant.tracking.tracker import MlflowTracker, machine_info

HERE = Path(__file__).resolve().parent


#: Latency noise between two models timed head to head on this machine (experiments/noise_check.py
#: measured up to 4.5% between identical kernels): a smaller gap is not a difference.
NOISE = 0.05


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def first_feasible(rec) -> int | None:
    """1-based trial index of the first trial within budget."""
    for r in sorted(rec.records, key=lambda r: r.number):
        if r.metrics and r.feasible:
            return r.number + 1
    return None


def best_trial_speedup(rec) -> float:
    """The best speedup a feasible trial of the study measured (0 when none was feasible)."""
    return max((r.metrics.speedup for r in rec.records if r.metrics and r.feasible), default=0.0)


def trials_to_near_best(rec, best: float | None = None, share: float = 0.95) -> int | None:
    """1-based trial index where a feasible speedup reached ``share`` of ``best`` (default: the
    study's own best trial)."""
    feasible = [r for r in rec.records if r.metrics and r.feasible]
    if not feasible:
        return None
    best = best or best_trial_speedup(rec)
    for r in sorted(feasible, key=lambda r: r.number):
        if r.metrics.speedup >= share * best:
            return r.number + 1
    return None


def run(task, warm_start, trials, seed, study, uri, scenario, history_uri=None, log=None):
    started = time.perf_counter()
    rec = search(
        task,
        "1pt",
        "default",
        n_trials=trials,
        seed=seed,
        scenario=scenario,
        study_name=study,
        warm_start=warm_start,
        history_uri=history_uri,
        progress=False,
        log=log or (lambda _: None),
        tracker=MlflowTracker(uri) if uri else None,
    )
    return rec, time.perf_counter() - started


#: Head-to-heads per comparison, each with fresh builds: one compiled PT2E build of the digits
#: CNN timed 6% apart from an equally fast one (experiments/RETIME.md), so one is not enough.
HEAD_TO_HEADS = 3


def head_to_head(task, recs: dict, scenario) -> dict:
    """Each study's recommendation, timed against float in one interleaved run (so the two
    are compared on the same machine state) and scored on the test split, ``HEAD_TO_HEADS``
    times with fresh builds: name -> the Metrics of its own median round by speedup (the two
    medians may come from different rounds; each is against the float of its round)."""
    rounds = []
    for _ in range(HEAD_TO_HEADS):
        finalists = {name: Finalist(name, rec.config) for name, rec in recs.items()}
        final_round(task, list(finalists.values()), scenario)
        rounds.append({name: f.metrics for name, f in finalists.items()})
    median = {}
    for name in recs:
        measured = sorted((r[name] for r in rounds if r[name]), key=lambda m: m.speedup)
        median[name] = measured[len(measured) // 2] if measured else None
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=["mlp", "cnn", "lstm", "transformer", "resnet18", "mobilenet_v2"],
    )
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scenario",
        default="bs1-t1",
        choices=sorted(SCENARIOS),
        help="the deployment every study optimizes for (batch size, threads)",
    )
    parser.add_argument(
        "--history-targets",
        nargs="+",
        default=["resnet18"],
        help="part B: the models each warm-started from the other models' studies",
    )
    parser.add_argument("--out", default=str(HERE / "WARM_START.md"))
    args = parser.parse_args()

    scenario = SCENARIOS[args.scenario]
    store = tempfile.mkdtemp(prefix="autoquant-warm-")
    uri = f"sqlite:///{store}/mlflow.db"  # the rules studies: what the history rankers learn from
    # part B's studies, kept apart so that no ranker learns from another's warm-started study
    history_studies_uri = f"sqlite:///{store}/history-studies.db"
    print(f"MLflow stores (for review): {uri}, {history_studies_uri}", flush=True)
    rows, rules_recs = [], {}
    for model in args.models:
        task = digits_task(model)
        with_prior, t1 = run(
            task, "rules", args.trials, args.seed, f"rules-{model}", uri, args.scenario
        )
        without, t2 = run(
            task, "none", args.trials, args.seed, f"none-{model}", None, args.scenario
        )
        rules_recs[model] = with_prior
        final = head_to_head(task, {"rules": with_prior, "none": without}, scenario)
        rows.append(
            {
                "model": model,
                "first feasible (rules)": first_feasible(with_prior),
                "first feasible (none)": first_feasible(without),
                "speedup (rules)": f"{final['rules'].speedup:.2f}x",
                "speedup (none)": f"{final['none'].speedup:.2f}x",
                "test drop pt (rules)": f"{final['rules'].drop_points:.2f}",
                "test drop pt (none)": f"{final['none'].drop_points:.2f}",
                "rules at least as good": _yes(
                    final["rules"].speedup >= (1 - NOISE) * final["none"].speedup
                ),
                "recommended (rules)": with_prior.config.label(),
                "recommended (none)": without.config.label(),
                "wall s (rules / none)": f"{t1:.0f} / {t2:.0f}",
            }
        )
        print(rows[-1], flush=True)

    def mean(key):
        values = [r[key] for r in rows if r[key] is not None]
        return sum(values) / len(values) if values else float("nan")

    machine = machine_info()
    lines = [
        "# Warm start: expert rules and learned history",
        "",
        f"{datetime.date.today()}, {machine['machine.cpu']} ({machine['machine.cpu_capability']} "
        f"kernels), {machine['machine.cores']} cores, torch {torch.__version__}; budget 1pt, "
        f"`default` space, {args.trials} trials per study, seed {args.seed}, at {args.scenario} "
        f"({scenario.batch_size} per batch, {scenario.threads} thread(s)). Trial counts are "
        f"judged on the validation split, as the search does. The two recommendations of a "
        f"model are compared head to head: both and eager float rebuilt and timed "
        f"interleaved (speedup against that float), {HEAD_TO_HEADS} times with fresh builds, "
        f"the median shown; drops on the held-out test split; 'at "
        f"least as good' allows {NOISE:.0%}, the head-to-head noise measured on this machine.",
        f"Command: `{' '.join(['.venv/bin/python experiments/warm_start.py', *sys.argv[1:]])}`",
        "",
        "## A. Rules against no warm start",
        "",
        format_table(rows, list(rows[0]), markdown=True),
        "",
        f"Mean trials to the first feasible configuration: {mean('first feasible (rules)'):.2f} "
        f"with the rules, {mean('first feasible (none)'):.2f} without.",
        "",
    ]
    rows_b, sources = [], set()
    for target in [t for t in args.history_targets if t in rules_recs]:
        task = digits_task(target)
        messages = []
        history_rec, _ = run(
            task,
            "history",
            args.trials,
            args.seed,
            f"history-{target}",
            history_studies_uri,
            args.scenario,
            history_uri=uri,
            log=messages.append,
        )
        # what the study learned from and the picks it enqueued, as it announced them
        for message in messages:
            if message.startswith(HISTORY_STUDIES):
                sources.update(message[len(HISTORY_STUDIES) :].split(", "))
        picks = [m[len(HISTORY_PICKS) :] for m in messages if m.startswith(HISTORY_PICKS)]
        rules_rec = rules_recs[target]
        final = head_to_head(task, {"history": history_rec, "rules": rules_rec}, scenario)
        both_best = max(best_trial_speedup(history_rec), best_trial_speedup(rules_rec))
        rows_b.append(
            {
                "model": target,
                "to 95% of own best (history / rules)": (
                    f"{trials_to_near_best(history_rec)} / {trials_to_near_best(rules_rec)}"
                ),
                "to 95% of both's best (history / rules)": (
                    f"{trials_to_near_best(history_rec, both_best)} / "
                    f"{trials_to_near_best(rules_rec, both_best)}"
                ),
                "recommended speedup (history / rules)": (
                    f"{final['history'].speedup:.2f}x / {final['rules'].speedup:.2f}x"
                ),
                "recommended (history)": history_rec.config.label(),
                "history's picks (after each of the rules')": picks[0] if picks else "-",
            }
        )
        print(rows_b[-1], flush=True)
    if rows_b:
        lines += [
            "## B. Warm-started from the other models' studies (history) against the rules",
            "",
            f"Each model's history ranker learned from the rules studies of part A on the other "
            f"models ({', '.join(sorted(sources)) or 'none: too little history'}, this model's "
            f"own excluded); its picks "
            f"alternate with the rules' as the first trials. Trials are counted to the first "
            f"feasible trial within 5% of the best speedup the trials measured: of the study's "
            f"own (the acceptance's measure), and of both studies together (a common bar). "
            f"The recommended speedups: the median of {HEAD_TO_HEADS} head-to-heads of the two.",
            "",
            format_table(rows_b, list(rows_b[0]), markdown=True),
            "",
        ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
