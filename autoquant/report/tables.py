"""Plain-text tables for the terminal and Markdown reports."""

from __future__ import annotations

import math
from collections.abc import Sequence


def format_table(rows: Sequence[dict], columns: Sequence[str], *, markdown: bool = False) -> str:
    """Rows of dicts as an aligned text table (or a Markdown table) with the given columns."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)

    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _sqnr_text(value: float | None) -> str:
    if value is None:
        return ""
    return "equal" if math.isinf(value) and value > 0 else f"{value:.1f}"


def metrics_row(label: str, metrics) -> dict:
    """A table row of the figures a person compares candidates by."""
    return {
        "candidate": label,
        "accuracy": f"{metrics.accuracy:.2%}" if metrics.bounded else f"{metrics.accuracy:.4g}",
        "drop (pt)": f"{metrics.drop_points:+.2f}",
        "95% CI": _interval_text(metrics),
        "flips": "" if metrics.flips is None else str(metrics.flips),
        "SQNR (dB)": _sqnr_text(metrics.output_sqnr_db),
        "latency (ms)": f"{metrics.latency_ms:.3f} ±{metrics.latency_spread_ms:.3f}",
        "speedup": f"{metrics.speedup:.2f}x{_speedup_interval_text(metrics)}",
        "size (KiB)": f"{metrics.size_bytes / 1024:.0f}",
        "size ratio": f"{metrics.size_ratio:.2f}",
    }


def _speedup_interval_text(metrics) -> str:
    low, high = metrics.speedup_ci_low, metrics.speedup_ci_high
    return "" if low is None else f" ({low:.2f}-{high:.2f})"


def _interval_text(metrics) -> str:
    low, high = metrics.drop_ci_low, metrics.drop_ci_high
    return "" if low is None else f"{low:+.2f}..{high:+.2f}"


METRIC_COLUMNS = [
    "candidate",
    "accuracy",
    "drop (pt)",
    "95% CI",
    "flips",
    "SQNR (dB)",
    "latency (ms)",
    "speedup",
    "size (KiB)",
    "size ratio",
]


def finalist_rows(rec) -> list[dict]:
    """The final round as table rows: float, the plain recipes, the best trials."""
    return [
        metrics_row(f.label, f.metrics)
        if f.metrics
        else {"candidate": f.label, "accuracy": "failed (below)"}
        for f in rec.finalists
    ]


def finalist_failures(rec) -> list[str]:
    """Why each finalist that could not be rebuilt or measured failed, a line each (kept out of
    the table, whose columns a long error would stretch)."""
    return [f"{f.label}: {f.error}" for f in rec.finalists if f.metrics is None and f.error]


def recommendation_markdown(rec, comparison: Sequence[dict]) -> str:
    """The Markdown report of a search: the choice and why, the comparison, the layers, trials."""
    status = "within budget" if rec.feasible else "NO configuration met the budget (best effort)"
    lines = [
        f"# autoquant report: {rec.study_name}",
        "",
        f"**{rec.config.label()}**: {status}.",
        "",
        rec.explanation,
        "",
        *(["## Notes", "", *[f"- {note}" for note in rec.notes], ""] if rec.notes else []),
        "## Final round: float, the plain recipes and the best trials",
        "",
        "Rebuilt and timed head to head in one interleaved measurement; accuracy (the task's "
        f"metric, {rec.metrics.metric}) on the held-out test data; flips: test examples whose "
        "answer differs from float's; SQNR: how closely the outputs follow float's (dB, higher "
        "is closer).",
        *([f"Timed on {rec.timing_conditions}."] if rec.timing_conditions else []),
        "",
        format_table(comparison, METRIC_COLUMNS, markdown=True),
        "",
        *[f"- failed: {line}" for line in finalist_failures(rec)],
        *([""] if finalist_failures(rec) else []),
        "## Layers",
        "",
        format_table(
            [{"layer": name, **entry} for name, entry in rec.layer_map.items()],
            ["layer", "type", "mode", "weight_dtype", "module"],
            markdown=True,
        ),
        "",
        "## Pareto front (latency, size, drop)",
        "",
        format_table(
            [
                {
                    **p,
                    "speedup": f"{p['speedup']:.2f}x",
                    "size_ratio": f"{p['size_ratio']:.2f}",
                    "drop": f"{p['drop']:.2f}",
                }
                for p in rec.pareto_front
            ],
            ["trial", "config", "speedup", "size_ratio", "drop", "feasible"],
            markdown=True,
        ),
        "",
        "## Trials",
        "",
        "Drop, flips (examples whose answer differs from float's) and SQNR (how closely the "
        "class scores follow float's, dB) on the validation data.",
        "",
        format_table([trial_row(r, rec.budget) for r in rec.records], TRIAL_COLUMNS, markdown=True),
        "",
        f"Search wall time {rec.search_seconds:.0f} s; trials {rec.counts}; evaluation time saved "
        f"by pruning about {rec.pruning_saved_seconds:.1f} s.",
        "",
    ]
    return "\n".join(lines)


TRIAL_COLUMNS = [
    "trial",
    "state",
    "config",
    "speedup",
    "size ratio",
    "drop",
    "flips",
    "SQNR (dB)",
    "feasible",
    "note",
]


def trial_row(record, budget) -> dict:
    m = record.metrics
    note = record.failure or (
        f"same as trial {record.duplicate_of}" if record.duplicate_of is not None else ""
    )
    return {
        "trial": record.number,
        "state": record.state,
        "config": record.config.label() if record.config else "",
        "speedup": f"{m.speedup:.2f}x" if m else "",
        "size ratio": f"{m.size_ratio:.2f}" if m else "",
        "drop": f"{budget.drop(m):.2f}" if m else "",
        "flips": "" if m is None or m.flips is None else str(m.flips),
        "SQNR (dB)": "" if m is None else _sqnr_text(m.output_sqnr_db),
        "feasible": ("yes" if record.feasible else "no") if m else "",
        "note": note.replace("|", "/")[:120],
    }
