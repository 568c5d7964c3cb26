"""Plots of a study a person would rather look at than read (PNG files, viewable offline)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or wanted

import matplotlib.pyplot as plt  # noqa: E402


def save_plots(rec, folder: str | Path) -> list[Path]:
    """Write the study's plots into ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        _drop_vs_speedup(rec, folder / "drop_vs_speedup.png"),
        _history(rec, folder / "history.png"),
    ]
    if rec.param_importances:
        written.append(_importances(rec, folder / "param_importances.png"))
    if rec.sensitivity:
        written.append(_sensitivity(rec, folder / "layer_sensitivity.png"))
    return written


def _evaluated(rec):
    return [r for r in rec.records if r.metrics and r.duplicate_of is None]


def _drop_vs_speedup(rec, path: Path) -> Path:
    unit = "%" if rec.budget.relative else "points"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    records = _evaluated(rec)
    for feasible, color, label in (
        (True, "tab:green", "within budget"),
        (False, "tab:red", "over budget"),
    ):
        group = [r for r in records if r.feasible == feasible]
        ax.scatter(
            [r.metrics.speedup for r in group],
            [rec.budget.drop(r.metrics) for r in group],
            c=color,
            label=label,
            alpha=0.7,
        )
    front = {p["trial"] for p in rec.pareto_front}
    points = sorted((r for r in records if r.number in front), key=lambda r: r.metrics.speedup)
    if points:  # a 3-D front (latency, size, drop) seen in 2-D: rings, not a line
        ax.scatter(
            [r.metrics.speedup for r in points],
            [rec.budget.drop(r.metrics) for r in points],
            s=160,
            facecolors="none",
            edgecolors="k",
            label="Pareto front (latency, size, drop)",
        )
    ax.axhline(rec.budget.max_drop, color="tab:orange", lw=1.5, label=f"budget {rec.budget}")
    ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    ax.scatter(
        [rec.metrics.speedup],
        [rec.budget.drop(rec.metrics)],
        marker="*",
        s=250,
        c="gold",
        edgecolors="k",
        zorder=5,
        label=f"recommended: {rec.config.label()}",
    )
    ax.set_xlabel("speedup against float (x)")
    ax.set_ylabel(f"accuracy drop ({unit})")
    ax.set_title(f"{rec.study_name}: every evaluated trial")
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def _history(rec, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    records = [r for r in rec.records if r.metrics]
    ax.scatter(
        [r.number for r in records],
        [r.metrics.speedup for r in records],
        c=["tab:green" if r.feasible else "tab:red" for r in records],
        alpha=0.6,
        label="trial speedup (green: within budget)",
    )
    best, xs, ys = None, [], []
    for r in sorted(records, key=lambda r: r.number):
        if r.feasible and (best is None or r.metrics.speedup > best):
            best = r.metrics.speedup
        if best is not None:
            xs.append(r.number)
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="k", label="best within budget so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("speedup against float (x)")
    ax.set_title("optimization history")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _importances(rec, path: Path) -> Path:
    names = list(rec.param_importances)[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.5))
    ax.barh(names, [rec.param_importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance for the objective (Optuna's default evaluator, PED-ANOVA)")
    ax.set_title("which choices mattered")
    return _save(fig, path)


def _sensitivity(rec, path: Path) -> Path:
    layers = rec.sensitivity[:30]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(layers) + 1.5))
    names = [r["name"] for r in layers][::-1]
    ax.barh(names, [r["drop_points"] for r in layers][::-1], color="tab:purple")
    ax.set_xlabel("accuracy drop when only this layer is int8 (points)")
    ax.set_title("per-layer sensitivity (most sensitive at the top)")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
