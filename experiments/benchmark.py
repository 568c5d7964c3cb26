"""The benchmark: autoquant's search against an exhaustive sweep of its space, the plain recipes
and float, for each zoo model, deployment scenario and accuracy budget (``experiments/bench.py``).

    python experiments/benchmark.py            # the full plan; writes experiments/RESULTS.md
    python experiments/benchmark.py --quick    # a few minutes

Every slow piece is cached under $AUTOQUANT_CACHE/bench, so an interrupted run resumes. It is
a research harness for autoquant itself, not a command users need: a user's own comparison
with the plain recipes is the final round of every ``autoquant search``. Exit code 1 when a
cell missed one of the benchmark's checks.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root holds ``experiments``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a small plan that finishes in minutes"
    )
    parser.add_argument("--models", nargs="+", help="zoo models (default: all)")
    parser.add_argument("--scenarios", nargs="+", help="default: bs1-t1 bs64-t2")
    parser.add_argument("--budgets", nargs="+", help="default: 1pt 0.25pt")
    parser.add_argument("--seeds", nargs="+", type=int, help="search seeds (default: 0 1 2)")
    parser.add_argument("--trials", type=int, help="trials per search (default 30)")
    parser.add_argument("--space", help="the space searched and swept (default: eager)")
    parser.add_argument(
        "--confidence",
        type=float,
        help="search in confidence mode at this level, e.g. 0.9 (default: the plain drop)",
    )
    parser.add_argument("--out", default="experiments", help="folder of the report and plot")
    parser.add_argument("--report", default="RESULTS", help="report name (default RESULTS)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: write the report from what is cached, list what is missing",
    )
    parser.add_argument(
        "--cache", help="cache folder (default $AUTOQUANT_CACHE or ~/.cache/autoquant)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Benchmark autoquant's search against an exhaustive sweep of its space, the plain
    recipes and float, per model, scenario and budget; writes RESULTS.md and a plot."""
    import dataclasses
    import time

    from experiments.bench import FULL, QUICK, plot, run_benchmark, write_report

    plan = QUICK if args.quick else FULL
    overrides = {
        "models": args.models,
        "scenarios": args.scenarios,
        "budgets": args.budgets,
        "seeds": args.seeds,
        "trials": args.trials,
        "space": args.space,
        "confidence": args.confidence,
    }
    plan = dataclasses.replace(
        plan,
        **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v},
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    skipped: list[str] = []
    cells = run_benchmark(
        plan,
        cache=Path(args.cache) if args.cache else None,
        run_missing=not args.report_only,
        skipped=skipped,
    )
    command = "python experiments/benchmark.py " + " ".join(args.argv)
    report = out / f"{args.report}.md"
    write_report(cells, plan, report, command, time.perf_counter() - started, skipped)
    plot(cells, out / f"{args.report}.png")
    print(f"wrote {report} and {out / args.report}.png")
    for item in skipped:
        print(f"  not measured: {item}")
    failed = [c for c in cells if not all(v for k, v in c.checks.items() if isinstance(v, bool))]
    for c in failed:
        missed = [k for k, v in c.checks.items() if v is False]
        print(f"  {c.model} {c.scenario} {c.budget}: missed {', '.join(missed)}")
    # a cell that missed one of the benchmark's checks fails the run (--report-only lists what
    # is not cached yet: that is its job, not a failure)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    from autoquant._warnings import quiet
    from autoquant.errors import AutoQuantError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        with quiet():
            return run(args)
    except AutoQuantError as err:
        print(f"benchmark: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
