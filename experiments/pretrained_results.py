"""The pretrained-model section of RESULTS.md, from the folders ``autoquant search --out`` wrote.

Run each search first (from the repository root; a few minutes to a quarter of an hour each on
2 cores), timing it, then collect their final rounds:

    /usr/bin/time -f "wall %e s" autoquant search experiments/minilm.yaml --scenario bs1-t1 \\
        --study minilm-bs1-t1 --out out/minilm-bs1-t1 2> out/minilm-bs1-t1.time
    ...
    python experiments/pretrained_results.py out/minilm-bs1-t1 out/minilm-bs16-t2 ...

Each folder's final round (float, the plain recipes and the search's best, rebuilt and timed
head to head, scored on the held-out test split) is printed as a table, with the
recommendation, whether it is faster than every recipe that holds the budget, and the search's
wall time (``FOLDER.time`` or ``FOLDER.log``, where /usr/bin/time wrote it, when present).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

RECIPES = (
    "quantize_dynamic Linear qint8",
    "static int8 x86 per-channel",
    "quantize_dynamic Linear float16",
)


def final_round(report: str) -> list[dict[str, str]]:
    """The rows of a report.md's final-round table."""
    section = report.split("## Final round", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def speed(row: dict[str, str]) -> float | None:
    match = re.match(r"([0-9.]+)x", row.get("speedup", ""))
    return float(match.group(1)) if match else None


def summary(folder: Path) -> str:
    info = json.loads((folder / "config.json").read_text())
    rows = final_round((folder / "report.md").read_text())
    budget = float(info["budget"].rstrip("pt%"))
    chosen = info["metrics"]
    test = info["test_metrics"] or chosen
    holding = [
        r
        for r in rows
        if r["candidate"] in RECIPES and speed(r) and float(r["drop (pt)"]) <= budget
    ]
    faster = all(test["speedup"] > speed(r) for r in holding)
    logs = [folder.with_suffix(s) for s in (".time", ".log") if folder.with_suffix(s).exists()]
    wall = re.search(r"wall ([0-9.]+) s", logs[0].read_text(errors="replace")) if logs else None
    columns = ["candidate", "accuracy", "drop (pt)", "flips", "SQNR (dB)", "speedup", "size ratio"]
    names = [chosen.get("metric", "score") if c == "accuracy" else c for c in columns]
    table = ["| " + " | ".join(names) + " |", "|" + "---|" * len(columns)]
    table += ["| " + " | ".join(r.get(c, "") for c in columns) + " |" for r in rows]
    return "\n".join(
        [
            f"### {info['study']} (budget {info['budget']}, metric {chosen.get('metric', '?')})",
            "",
            *table,
            "",
            f"Recommended: `{info['explanation'].split('.')[0].removeprefix('Recommended: ')}`; "
            f"{test['speedup']:.2f}x float, drop {test['drop_points']:.2f} on test, size ratio "
            f"{test['size_ratio']:.2f}. Faster than every plain recipe that holds the budget "
            f"({', '.join(r['candidate'] for r in holding) or 'none holds it'}): "
            f"{'yes' if faster else '**no**'}. Search wall time: "
            f"{f'{float(wall.group(1)) / 60:.1f} min' if wall else 'not recorded'}.",
            "",
        ]
    )


if __name__ == "__main__":
    print("\n".join(summary(Path(folder)) for folder in sys.argv[1:]))
