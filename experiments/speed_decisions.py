"""How often, and how, the speed decision of the final round changes the recommendation.

Commit b8a9dbf ("Speed decisions from the measured spread") changed how ``recommend`` picks
among the final round's contenders (finalists that came from trials), latency objective:

- old rule: rank all contenders with speedups within ``NOISE`` (3 %) of the fastest counted
  as tied (ties: fewer validation flips, smaller, simpler method, faster); if the top one ran
  below 1x in the final round and is not plain fp32, recommend the float model instead.
- new rule: only contenders whose final-round speedup interval lies wholly above 1 are
  eligible (float otherwise: the plain fp32 trial when there is one); ties are the contenders
  whose interval overlaps the fastest's.

Each search here runs with the current code; the old rule is then applied to exactly the
same final-round measurements (``Recommendation.finalists``), so the two picks are paired and
no timing drift between runs can make them differ. The new rule is also re-derived from the
finalists, as a check that they hold what the choice was made on. Results go to
``/tmp/aq-speed-decisions.json`` (a rerun resumes from it) and ``SPEED_DECISIONS.md``.

    AUTOQUANT_CACHE=/tmp/aq-speed-cache .venv/bin/python experiments/speed_decisions.py

The package is imported once; to keep a long run on one version of the code while others
commit, put a snapshot first on the path (``git archive HEAD autoquant search_spaces``
unpacked in a folder, with the commit in a ``COMMIT`` file there, then ``PYTHONPATH=`` that
folder).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import autoquant
from autoquant.engine.config import QuantConfig
from autoquant.engine.methods import get_method
from autoquant.recommend.recommendation import (
    NOISE,
    Finalist,
    Recommendation,
    _rank,
    faster_than_baseline,
)
from autoquant.tasks import digits_task
from autoquant.tracking.record import TrialRecord

MODELS = ("mlp", "lstm", "transformer", "cnn", "resnet18")
SCENARIOS = ("bs1-t1", "bs64-t2")
SEEDS = (0, 1, 2)
N_TRIALS = 30
#: A model whose search takes longer than this runs seed 0 only.
SLOW_SECONDS = 180.0
RAW = Path("/tmp/aq-speed-decisions.json")
REPORT = Path(__file__).with_name("SPEED_DECISIONS.md")
PLAIN_FLOAT = QuantConfig(method="fp32")


def _old_rank(records: list[TrialRecord]) -> list[TrialRecord]:
    """``_rank`` of commit 5bc790d (before b8a9dbf), latency objective: tied within NOISE
    of the fastest."""
    fastest = max(r.metrics.speedup for r in records)
    tied = [r for r in records if r.metrics.speedup >= fastest * (1 - NOISE)]
    rest = [r for r in records if r not in tied]
    counted = all(r.metrics.flips is not None for r in tied)
    tied.sort(
        key=lambda r: (
            r.metrics.flips if counted else 0,
            round(r.metrics.size_ratio, 2),
            get_method(r.config.method).simplicity,
            -r.metrics.speedup,
        )
    )
    return tied + sorted(rest, key=lambda r: -r.metrics.speedup)


def _with_final_speed(finalist: Finalist, *, intervals: bool) -> TrialRecord:
    """The trial's validation record with the final round's speed (the interval too in the new
    code, ``intervals``; the old code kept the trial's own)."""
    final, m = finalist.metrics, finalist.record.metrics
    speed = {
        "speedup": final.speedup,
        "latency_ms": final.latency_ms,
        "latency_spread_ms": final.latency_spread_ms,
        "float_latency_ms": final.float_latency_ms,
    }
    if intervals:
        speed |= {"speedup_ci_low": final.speedup_ci_low, "speedup_ci_high": final.speedup_ci_high}
    return dataclasses.replace(finalist.record, metrics=dataclasses.replace(m, **speed))


def picks(rec: Recommendation) -> tuple[Finalist, Finalist]:
    """(old rule's pick, new rule's pick) from the final round of ``rec`` (latency objective),
    as ``recommend`` makes them when the study had a feasible trial."""
    float_entry = rec.finalists[0]
    contenders = [f for f in rec.finalists if f.record is not None and f.metrics is not None]
    by_number = {f.record.number: f for f in contenders}
    feasible = any(r.metrics and r.duplicate_of is None and r.feasible for r in rec.records)
    if not (feasible and contenders):  # the branches both rules share
        same = contenders[0] if contenders else float_entry
        return same, same
    old = by_number[
        _old_rank([_with_final_speed(f, intervals=False) for f in contenders])[0].number
    ]
    if old.metrics.speedup < 1 and old.config.canonical() != PLAIN_FLOAT:
        old = float_entry
    candidates = [_with_final_speed(f, intervals=True) for f in contenders]
    faster = [r for r in candidates if faster_than_baseline(r.metrics)]
    if faster:
        new = by_number[_rank(faster, "latency")[0].number]
    else:
        plain = [r for r in candidates if r.config.canonical() == PLAIN_FLOAT]
        new = by_number[plain[0].number] if plain else float_entry
    return old, new


def _pick(finalist: Finalist) -> dict[str, Any]:
    m = finalist.metrics
    return {
        "label": finalist.config.label(),
        "trial": finalist.record.number if finalist.record else None,
        "float": finalist.config.method == "fp32",
        "speedup": m.speedup,
        "ci": [m.speedup_ci_low, m.speedup_ci_high],
        "test_drop": m.drop_points,
        "flips": finalist.record.metrics.flips if finalist.record else None,
    }


def run_search(model: str, scenario: str, seed: int) -> dict[str, Any]:
    """One search; both rules' picks from its final round, and the load around it."""
    task = digits_task(model, log=lambda text: print(text, file=sys.stderr))
    load_start, started = os.getloadavg(), time.perf_counter()
    rec = autoquant.search(
        task,
        "1pt",
        space="eager",
        n_trials=N_TRIALS,
        seed=seed,
        scenario=scenario,
        progress=False,
        log=lambda _: None,
    )
    seconds, load_end = time.perf_counter() - started, os.getloadavg()
    timed = rec.finalists[0].metrics  # the final round's one timing (float's entry)
    old, new = picks(rec)
    chosen = next(f for f in rec.finalists if f.label.startswith("recommended: "))
    contenders = [f for f in rec.finalists if f.record is not None and f.metrics is not None]
    return {
        "model": model,
        "scenario": scenario,
        "seed": seed,
        "seconds": seconds,
        "load_start": load_start,
        "load_end": load_end,
        "actual": rec.config.label(),
        "final_reliable": rec.timing_reliable,
        "final_wait_share": timed.cpu_wait_share if timed else None,
        "new_matches_actual": new is chosen and new.config.label() == rec.config.label(),
        "old": _pick(old),
        "new": _pick(new),
        "contenders": [_pick(f) for f in contenders],
    }


def changed(row: dict) -> bool:
    """Whether the rules recommend different models (a plain fp32 trial and the float entry
    are the same model)."""
    return (row["old"]["label"], row["old"]["float"]) != (row["new"]["label"], row["new"]["float"])


def direction(row: dict) -> str:
    old, new = row["old"], row["new"]
    if old["float"] and not new["float"]:
        return "old float -> new quantized"
    if new["float"] and not old["float"]:
        return "old quantized -> new float"
    if old["ci"][0] is not None and old["ci"][0] <= 1:
        return "both quantized: old pick not clearly above 1x, new picks another"
    return "both quantized: tie decided differently"


def _speed(pick: dict) -> str:
    low, high = pick["ci"]
    ci = f" ({low:.2f}-{high:.2f})" if low is not None else ""
    return f"{pick['speedup']:.2f}x{ci}"


def _name(pick: dict) -> str:
    return pick["label"] + (f" (t{pick['trial']})" if pick["trial"] is not None else " (entry)")


def _waited(row: dict) -> str:
    """The share of the final round's timing its threads waited for a core; "busy" when
    autoquant judged the timing unreliable."""
    share = row["final_wait_share"]
    text = "?" if share is None else f"{share:.0%}"
    return text if row["final_reliable"] else f"{text}, busy"


def _machine() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if "Model name" in ln), "?"
    )
    return (
        f"{cpu}, {os.cpu_count()} cores ({torch.backends.cpu.get_cpu_capability()}), "
        f"torch {torch.__version__}"
    )


def code_version() -> str:
    """Which autoquant the run imported: a snapshot's COMMIT, or the checkout's commit."""
    root = Path(autoquant.__file__).resolve().parents[1]
    if (root / "COMMIT").exists():
        return f"autoquant {(root / 'COMMIT').read_text().strip()} (snapshot in {root})"

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    dirty = git("diff-index", "--quiet", "HEAD", "--", "autoquant").returncode != 0
    head = git("rev-parse", "--short", "HEAD").stdout.strip() or "?"
    return f"autoquant {head}{' with uncommitted changes' if dirty else ''} ({root})"


def write_report(rows: list[dict], wall: float, version: str) -> None:
    """SPEED_DECISIONS.md: a table per model and scenario, the changed searches in detail, and
    the summary."""
    diff = [r for r in rows if changed(r)]
    loads = [x for r in rows for x in (r["load_start"][0], r["load_end"][0])]
    searching = sum(r["seconds"] for r in rows)
    lines = [
        "# Speed decisions: old rule (3 % ties, float below 1x) against new (intervals)",
        "",
        f"Produced by `AUTOQUANT_CACHE=/tmp/aq-speed-cache .venv/bin/python "
        f"experiments/speed_decisions.py` on {datetime.date.today()}, {version}; "
        f"{_machine()}. Each search: digits task, budget 1pt, space `eager`, "
        f"{N_TRIALS} trials, latency objective, rules warm start. The new pick is what the "
        f"search recommended; the old pick is the previous commit's rule applied to the same "
        f"final-round measurements. Speedups are the final round's, with the 95 % interval; "
        f"the drop is on the test split (points). Wall time of this run {wall / 60:.0f} min, of "
        f"which the searches {searching / 60:.0f} min (the rest: loading the zoo models, or "
        f"training them on first use). "
        f"1-minute load average during "
        f"the run: {min(loads):.2f} to {max(loads):.2f} (2 cores, shared machine).",
        "",
        "## Summary",
        "",
        f"- Searches: {len(rows)}; the pick changed in {len(diff)}.",
        f"- New rule re-derived from the finalists matches the search's recommendation in "
        f"{sum(r['new_matches_actual'] for r in rows)} of {len(rows)}.",
        f"- Final rounds autoquant marked unreliable (threads waited for a core even when "
        f"timed twice): {sum(not r['final_reliable'] for r in rows)} of {len(rows)}.",
    ]
    for kind in sorted({direction(r) for r in diff}):
        cells = [r for r in diff if direction(r) == kind]
        lines.append(f"- {kind}: {len(cells)}")
        lines += [
            f"  - {r['model']} {r['scenario']} seed {r['seed']}: old {_name(r['old'])} "
            f"{_speed(r['old'])}, test drop {r['old']['test_drop']:.2f}; new "
            f"{_name(r['new'])} {_speed(r['new'])}, test drop {r['new']['test_drop']:.2f}"
            for r in cells
        ]
    for model in MODELS:
        for scenario in SCENARIOS:
            cell = [r for r in rows if (r["model"], r["scenario"]) == (model, scenario)]
            if not cell:
                continue
            lines += [
                "",
                f"## {model} {scenario}",
                "",
                "| seed | new pick | speedup | test drop | old pick | speedup | test drop "
                "| changed | load start/end | final round waited | s |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {r['seed']} | {_name(r['new'])} | {_speed(r['new'])} | "
                f"{r['new']['test_drop']:.2f} | {_name(r['old'])} | {_speed(r['old'])} | "
                f"{r['old']['test_drop']:.2f} | {'**yes**' if changed(r) else 'no'} | "
                f"{r['load_start'][0]:.2f}/{r['load_end'][0]:.2f} | {_waited(r)} | "
                f"{r['seconds']:.0f} |"
                for r in cell
            ]
    if diff:
        lines += ["", "## Contenders of the changed searches", ""]
        lines.append("Final-round speedup (interval), validation flips, test drop.")
        for r in diff:
            lines += ["", f"{r['model']} {r['scenario']} seed {r['seed']}:", ""]
            lines += [
                f"- {_name(c)}: {_speed(c)}, {c['flips']} flips, test drop {c['test_drop']:.2f}"
                for c in r["contenders"]
            ]
    REPORT.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run every search not yet in RAW, then write the report."""
    rows = json.loads(RAW.read_text()) if RAW.exists() else []
    version = code_version()
    print(version, file=sys.stderr)
    started = time.perf_counter()
    for model in MODELS:
        slow = any(r["model"] == model and r["seconds"] > SLOW_SECONDS for r in rows)
        for seed in SEEDS:
            if slow and seed > 0:
                print(f"{model}: slower than {SLOW_SECONDS:.0f} s, seed 0 only", file=sys.stderr)
                break
            for scenario in SCENARIOS:
                if any(
                    (r["model"], r["scenario"], r["seed"]) == (model, scenario, seed) for r in rows
                ):
                    continue
                row = run_search(model, scenario, seed)
                rows.append(row)
                RAW.write_text(json.dumps(rows, indent=1))
                slow = slow or row["seconds"] > SLOW_SECONDS
                print(
                    f"{model} {scenario} seed {seed}: {row['seconds']:.0f} s, new "
                    f"{_name(row['new'])}, old {_name(row['old'])}"
                    f"{' CHANGED' if changed(row) else ''}, load {row['load_end'][0]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    write_report(rows, time.perf_counter() - started, version)


if __name__ == "__main__":
    main()
