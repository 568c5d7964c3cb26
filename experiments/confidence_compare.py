"""The benchmark re-judged with intervals: per cell, whether each seed's test drop fell within
the interval its validation drop predicted, and what confidence mode (``--confidence``) does to
the budget on test and to the speedup, from the pieces two benchmark runs cached.

    python experiments/benchmark.py --models cnn ... --cache C                       # plain
    python experiments/benchmark.py --models cnn ... --cache C --confidence 0.9      # sure
    python experiments/confidence_compare.py --models cnn ... --cache C --confidence 0.9

Measures nothing: it reads the cache (both runs must be complete) and prints a Markdown
section (the summary table and its totals).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root holds ``experiments``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _seeds_within(cell) -> tuple[int, int]:
    """Seeds whose recommendation held the budget on the test split, of all seeds."""
    chosen = [r for r in cell.rows if r["kind"] == "autoquant"]
    return sum(bool(r.get("within")) for r in chosen), len(chosen)


def compare(plain_cells: list, sure_cells: list, confidence: float) -> str:
    """The Markdown section: one row per cell of both runs, then the totals."""
    sure_by_cell = {(c.model, c.scenario, str(c.budget)): c for c in sure_cells}
    lines = [
        "| model | scenario | budget | test drop in val. 95% CI | plain: budget on test "
        f"(seeds) | plain: median / sweep best | {confidence:g}: budget on test (seeds) | "
        f"{confidence:g}: median / sweep best | {confidence:g}: picks |",
        "|" + "---|" * 9,
    ]
    totals = {"inside": [0, 0], "plain": [0, 0], "sure": [0, 0]}
    cells_holding = {"plain": 0, "sure": 0}
    for cell in plain_cells:
        sure = sure_by_cell.get((cell.model, cell.scenario, str(cell.budget)))
        if sure is None:
            continue
        inside, judged = cell.checks["test_in_interval"]
        plain_held, sure_held = _seeds_within(cell), _seeds_within(sure)
        for key, (held, seeds) in (("plain", plain_held), ("sure", sure_held)):
            totals[key][0] += held
            totals[key][1] += seeds
            cells_holding[key] += held == seeds
        totals["inside"][0] += inside
        totals["inside"][1] += judged
        picks = ", ".join(
            r["label"].split(": ", 1)[1] for r in sure.rows if r["kind"] == "autoquant"
        )

        def ratio(c) -> str:
            return f"{c.checks['median_speedup'] / c.checks['sweep_best_speedup']:.2f}"

        lines.append(
            f"| {cell.model} | {cell.scenario} | {cell.budget} | {inside}/{judged} | "
            f"{plain_held[0]}/{plain_held[1]} | {ratio(cell)} | {sure_held[0]}/{sure_held[1]} "
            f"| {ratio(sure)} | {picks} |"
        )
    cells = sum(1 for c in plain_cells if (c.model, c.scenario, str(c.budget)) in sure_by_cell)
    lines += [
        "",
        f"Test drop within the validation drop's 95 % interval: {totals['inside'][0]} of "
        f"{totals['inside'][1]} searches. Budget held on test: plain {totals['plain'][0]} of "
        f"{totals['plain'][1]} searches ({cells_holding['plain']} of {cells} cells in every "
        f"seed); confidence {confidence:g} {totals['sure'][0]} of {totals['sure'][1]} "
        f"({cells_holding['sure']} of {cells} cells).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from autoquant._warnings import quiet
    from experiments.bench import FULL, run_benchmark

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True, help="zoo models")
    parser.add_argument("--cache", required=True, help="the benchmark runs' cache folder")
    parser.add_argument("--confidence", type=float, default=0.9, help="the sure run's level")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="search seeds")
    args = parser.parse_args(argv)
    plain = dataclasses.replace(FULL, models=tuple(args.models), seeds=tuple(args.seeds))
    sure = dataclasses.replace(plain, confidence=args.confidence)
    with quiet():
        cells = [
            run_benchmark(plan, cache=Path(args.cache), log=lambda _: None, run_missing=False)
            for plan in (plain, sure)
        ]
    print(compare(*cells, args.confidence))
    return 0


if __name__ == "__main__":
    sys.exit(main())
