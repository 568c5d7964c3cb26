"""Plain-text tables for the terminal and Markdown reports."""

from __future__ import annotations

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


def metrics_row(label: str, metrics) -> dict:
    """A table row of the figures a person compares candidates by."""
    return {
        "candidate": label,
        "accuracy": f"{metrics.accuracy:.2%}",
        "drop (pt)": f"{metrics.drop_points:+.2f}",
        "latency (ms)": f"{metrics.latency_ms:.3f} ±{metrics.latency_spread_ms:.3f}",
        "speedup": f"{metrics.speedup:.2f}x",
        "size (KiB)": f"{metrics.size_bytes / 1024:.0f}",
        "size ratio": f"{metrics.size_ratio:.2f}",
    }


METRIC_COLUMNS = [
    "candidate",
    "accuracy",
    "drop (pt)",
    "latency (ms)",
    "speedup",
    "size (KiB)",
    "size ratio",
]
