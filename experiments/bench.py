"""The benchmark: autoquant's search against an exhaustive sweep of its space, the plain
recipes and float, for each model, deployment scenario and accuracy budget.

Every slow piece is cached as JSON under ``<cache>/bench``: the sweep (``sweeps/``, one file
per model and weights, written after every configuration, shared by every space that holds the
configuration), each search (per space, model, scenario, budget and seed) and each final
head-to-head. A rerun, or a run after Ctrl-C, goes on where the last one stopped.

The comparisons are made in one final head-to-head per model, scenario and budget: float, the
plain recipes, the sweep's best configurations and every seed's recommendation are rebuilt,
timed in one interleaved measurement and scored on the test split, so the ratios do not depend
on how busy the machine was when each piece first ran.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.measure import FloatReference, Scenario, TimingPlan, get_scenario, measure, score
from autoquant.recommend.recipes import PLAIN_RECIPES
from autoquant.recommend.recommendation import NOISE, Finalist, final_round
from autoquant.study.history import space_configs
from autoquant.study.sensitivity import model_fingerprint
from autoquant.study.space import SearchSpace, load_space, parse_space
from autoquant.tasks import digits_task
from autoquant.tasks.base import Task
from autoquant.tasks.metrics import get_metric
from autoquant.tasks.zoo import cache_dir

#: The benchmark's tasks are the digits zoo's: single-label classifiers scored on top-1.
METRIC = get_metric("top1")

#: A sweep times hundreds of configurations: a third of a second each.
SWEEP_TIMING = TimingPlan(budget_s=0.3, min_rounds=5, max_rounds=30)

#: The quick plan's space: a few post-training configs on x86 and fbgemm, two layers at most
#: kept in float (so the hard case can still be recovered), small enough for minutes.
QUICK_SPACE = """
description: The benchmark's quick mode; post-training methods on x86 and fbgemm.
methods: [fp32, dynamic_int8, dynamic_fp16, static_int8]
backends: [x86, fbgemm]
activation_observers: [minmax, histogram]
weight_observers: [per_channel_minmax]
qschemes: [affine]
reduce_range: [true]
calibration_batches: [4]
layers:
  mode: ranked
  max_float: 2
"""

SWEEP_FINALISTS = 3  # the sweep's fastest feasible configs re-timed in the head-to-head


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the benchmark runs: models x scenarios x budgets, searched with ``seeds``."""

    models: tuple[str, ...]
    scenarios: tuple[str, ...] = ("bs1-t1", "bs64-t2")
    budgets: tuple[str, ...] = ("1pt", "0.25pt")
    seeds: tuple[int, ...] = (0, 1, 2)
    trials: int = 30
    space: str = "eager"
    confidence: float | None = None  # the searches' confidence mode (None: the plain drop)

    @property
    def suffix(self) -> str:
        """What tells a confidence-mode run's cached searches and head-to-heads apart."""
        return f"-c{self.confidence:g}" if self.confidence else ""

    def search_space(self) -> SearchSpace:
        if self.space == "quick":
            return parse_space(
                QUICK_SPACE, source="experiments.bench.QUICK_SPACE", name="bench-quick"
            )
        return load_space(self.space)


FULL = Plan(
    models=("mlp", "lstm", "transformer", "cnn", "cnn_outliers", "resnet18", "mobilenet_v2"),
    space="eager",
)
QUICK = Plan(models=("mlp", "cnn_outliers"), seeds=(0,), trials=15, space="quick")


def space_tag(space: SearchSpace) -> str:
    """The cache folder of a space: its name and a digest of its content, so results measured
    in an earlier version of a space are never mixed with the current one."""
    content = json.dumps(space.to_dict(), sort_keys=True, default=str)
    return f"{space.name}-{hashlib.sha256(content.encode()).hexdigest()[:8]}"


class NotMeasured(Exception):
    """A piece of the benchmark is not in the cache and measuring was not asked for."""


def _key(config: QuantConfig) -> str:
    return config.canonical().to_json()


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)  # atomic: an interrupted run never leaves half a file


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def source_commit() -> str:
    """The git commit of the autoquant source that measures (``+changes`` when the checkout
    has uncommitted changes; ``unknown`` outside a checkout): the benchmark resumes across
    sessions, so each cached piece records the code that produced it."""
    folder = str(Path(__file__).resolve().parent)
    try:
        head = subprocess.run(
            ["git", "-C", folder, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", folder, "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0 or not head.stdout.strip():
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err) else ''}"


# -- the exhaustive sweep --------------------------------------------------------------------
def run_sweep(
    task: Task,
    configs: list[QuantConfig],
    scenarios: list[Scenario],
    path: Path,
    run_missing: bool = True,
) -> dict[str, dict]:
    """Measure every config once (validation and test accuracy, size, speedup per scenario).

    Returns config key -> entry; ``seconds`` is the time a search would spend on it
    (quantize, score on validation data) and ``latency_seconds`` the timing per scenario.
    """
    done: dict[str, dict] = _read(path) or {}
    todo = [
        c
        for c in configs
        if _key(c) not in done
        or set(done[_key(c)].get("speedup", {})) < {s.name for s in scenarios}
    ]
    if todo and not run_missing:
        raise NotMeasured(f"sweep of {task.model_name}: {len(todo)} configurations missing")
    commit = source_commit() if todo else None
    if todo:  # float measured once per scenario (validation) and on the test data
        references = {s.name: FloatReference.of(task, s) for s in scenarios}
        test_reference = FloatReference.of(task, scenarios[0], task.test_data)
    for config in tqdm(todo, desc=f"sweep {task.model_name}", unit="config", disable=not todo):
        started = time.perf_counter()
        entry: dict[str, Any] = {"config": config.to_dict(), "commit": commit}
        model = None
        try:
            model = task.build(config)
            val = references[scenarios[0].name].score(model)
            entry["val_accuracy"], entry["val_flips"] = val.accuracy, val.flips
            entry["seconds"] = time.perf_counter() - started
            test = test_reference.score(model)
            entry["test_accuracy"], entry["test_flips"] = test.accuracy, test.flips
            entry["speedup"], entry["latency_seconds"] = {}, {}
            entry["compile_seconds"] = {}
            for scenario in scenarios:
                timed = time.perf_counter()
                # compiled for this scenario's shape (weights frozen) when it deploys compiled
                metrics = measure(model, references[scenario.name], timing=SWEEP_TIMING, scored=val)
                entry["size_bytes"] = metrics.size_bytes
                entry["speedup"][scenario.name] = metrics.speedup
                if model.needs_compile:
                    entry["compile_seconds"][scenario.name] = metrics.compile_seconds
                entry["latency_seconds"][scenario.name] = time.perf_counter() - timed
        except Exception as err:  # noqa: BLE001 - a config that fails is a result of the sweep
            entry["error"] = _error(err)
            entry["seconds"] = time.perf_counter() - started
            entry["speedup"] = {s.name: None for s in scenarios}
        done[_key(config)] = entry
        _write(path, done)
        del model  # a sweep builds hundreds of models: free each before the next (measured:
        gc.collect()  # without this, a resnet18 sweep held 13 GB after 130 configurations)
    return {_key(c): done[_key(c)] for c in configs}


def sweep_seconds(sweep: dict[str, dict], scenario: str) -> float:
    """What the sweep costs for one scenario: every config built, scored and timed once."""
    return sum(
        e["seconds"] + e.get("latency_seconds", {}).get(scenario, 0.0) for e in sweep.values()
    )


def sweep_feasible(sweep: dict[str, dict], float_accuracy: float, budget: Budget) -> list[dict]:
    """The configs whose validation drop is within ``budget`` (what a search can see)."""
    return [
        e
        for e in sweep.values()
        if "error" not in e
        and budget.drop_between(METRIC, float_accuracy, e["val_accuracy"]) <= budget.max_drop
    ]


def _holds_on_test(entry: dict, float_test_accuracy: float, budget: Budget) -> bool:
    """Whether a sweep entry's test accuracy is within ``budget`` of float's."""
    return (
        budget.drop_between(METRIC, float_test_accuracy, entry["test_accuracy"]) <= budget.max_drop
    )


def _plain_float(entry: dict) -> bool:
    return QuantConfig.from_dict(entry["config"]).canonical() == QuantConfig(method="fp32")


def deployment_options(
    space: SearchSpace, sweep: dict[str, dict], ranked: list[dict]
) -> dict[str, list[QuantConfig]]:
    """Where a space mixes deployments (compiled float, two engines), the candidates for the
    best of each, so the table shows what each option gives: ``compiled float``, ``best
    torch.ao`` and ``best torchao`` (each engine's fastest feasible quantized sweep
    configurations; the head-to-head picks among them)."""
    from autoquant.engine.methods import get_method
    from autoquant.recommend.recipes import COMPILED_FLOAT

    engines = {get_method(m).engine for m in space.methods if m != "fp32"}
    if "inductor" not in space.compile and len(engines) < 2:
        return {}
    options = {}
    if _key(COMPILED_FLOAT) in sweep and "error" not in sweep[_key(COMPILED_FLOAT)]:
        options["compiled float"] = [COMPILED_FLOAT]
    for engine in ("torch.ao", "torchao"):
        best = [
            QuantConfig.from_dict(e["config"])
            for e in ranked
            if e["config"]["method"] != "fp32"
            and get_method(e["config"]["method"]).engine == engine
        ][:SWEEP_FINALISTS]
        if best:
            options[f"best {engine}"] = best
    return options


# -- the searches ----------------------------------------------------------------------------
def run_search(
    task: Task,
    plan: Plan,
    scenario: str,
    budget: str,
    seed: int,
    path: Path,
    tracking_uri: str,
    run_missing: bool = True,
) -> dict:
    """One autoquant search as a user runs it (MLflow tracking on), summarized to JSON."""
    from autoquant.study.run import search
    from autoquant.tracking.tracker import MlflowTracker

    cached = _read(path)
    if cached:
        return cached
    if not run_missing:
        raise NotMeasured(f"search {path.name} of {task.model_name}")
    with tempfile.TemporaryDirectory() as plots:
        started = time.perf_counter()
        recommendation = search(
            task,
            budget,
            plan.search_space(),
            n_trials=plan.trials,
            seed=seed,
            scenario=scenario,
            confidence=plan.confidence,
            study_name=f"bench-{task.model_name}-{scenario}-{budget}-s{seed}{plan.suffix}-"
            f"{int(time.time())}",
            tracker=MlflowTracker(tracking_uri, out_dir=plots),
            progress=False,
            log=lambda _: None,
        )
        wall = time.perf_counter() - started
    chosen = recommendation.metrics
    result = {
        "config": recommendation.config.to_dict(),
        "label": recommendation.config.label(),
        "commit": source_commit(),
        "feasible": recommendation.feasible,
        "wall_seconds": wall,
        "work_seconds": recommendation.work_seconds,
        # its validation drop, with the interval that predicts the drop on new data
        "validation": {
            "drop": chosen.drop_points,
            "ci_low": chosen.drop_ci_low,
            "ci_high": chosen.drop_ci_high,
            "upper": chosen.drop_upper,
        },
        "records": [
            {
                "number": r.number,
                "label": r.config.label() if r.config else None,
                "state": r.state,
                "feasible": r.feasible,
                "speedup": r.metrics.speedup if r.metrics else None,
                "flips": r.metrics.flips if r.metrics else None,
                "duplicate_of": r.duplicate_of,
            }
            for r in recommendation.records
        ],
    }
    _write(path, result)
    return result


def trials_to(records: list[dict], speedup: float | None = None) -> int | None:
    """Trials until the first feasible one (whose speedup reaches ``speedup``, if given)."""
    for position, record in enumerate(sorted(records, key=lambda r: r["number"]), start=1):
        if record["feasible"] and (speedup is None or record["speedup"] >= speedup):
            return position
    return None


# -- the head-to-head ------------------------------------------------------------------------
def head_to_head(
    task: Task,
    entries: dict[str, tuple[str, QuantConfig]],
    scenario: Scenario,
    path: Path,
    run_missing: bool = True,
) -> dict[str, dict]:
    """Rebuild ``entries`` (key -> (label, config)), time them against float in one
    interleaved run and score them on the test split; cached by the set of keys."""
    digest = hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:12]
    cached = _read(path)
    if cached and cached.get("digest") == digest:
        return cached["results"]
    if not run_missing:
        raise NotMeasured(f"head-to-head {path.name} of {task.model_name}")
    finalists = {key: Finalist(label, config) for key, (label, config) in entries.items()}
    final_round(task, list(finalists.values()), scenario)
    results = {
        key: {
            "label": f.label,
            "error": f.error,
            **(
                {
                    "test_accuracy": f.metrics.accuracy,
                    "float_test_accuracy": f.metrics.float_accuracy,
                    "speedup": f.metrics.speedup,
                    "size_ratio": f.metrics.size_ratio,
                    "test_flips": f.metrics.flips,
                }
                if f.metrics
                else {}
            ),
        }
        for key, f in finalists.items()
    }
    commit = source_commit()
    for result in results.values():
        result["commit"] = commit
    _write(path, {"digest": digest, "results": results})
    return results


# -- one cell of the table -------------------------------------------------------------------
@dataclasses.dataclass
class Cell:
    """The results for one model, scenario and budget."""

    model: str
    scenario: str
    budget: Budget
    float_accuracy: float
    rows: list[dict]  # kind, label, config, test drop, speedup, size, within budget, ...
    sweep: dict[str, Any]  # configs, feasible, seconds, best
    searches: list[dict]
    checks: dict[str, Any]
    commits: set[str] = dataclasses.field(default_factory=set)  # the code that measured it


def _row(kind: str, label: str, measured: dict, budget: Budget, **extra) -> dict:
    row = {"kind": kind, "label": label, **extra}
    if measured.get("error") or "speedup" not in measured:
        return {**row, "error": measured.get("error") or "not measured"}
    drop = budget.drop_between(METRIC, measured["float_test_accuracy"], measured["test_accuracy"])
    return {
        **row,
        "test_accuracy": measured["test_accuracy"],
        "test_flips": measured.get("test_flips"),
        "drop": drop,
        "speedup": measured["speedup"],
        "size_ratio": measured["size_ratio"],
        "within": drop <= budget.max_drop,
    }


def run_cell(
    task: Task,
    plan: Plan,
    sweep: dict[str, dict],
    float_accuracy: float,
    scenario_name: str,
    budget_text: str,
    folder: Path,
    tracking_uri: str,
    log: Callable[[str], None],
    run_missing: bool = True,
) -> Cell:
    scenario, budget = get_scenario(scenario_name), Budget.parse(budget_text)
    tag = f"{scenario_name}-{budget_text}"
    feasible = sweep_feasible(sweep, float_accuracy, budget)
    quantized = [e for e in feasible if not _plain_float(e)]
    ranked = sorted(quantized, key=lambda e: -(e["speedup"][scenario_name] or 0))
    sweep_best_trial = max([1.0] + [e["speedup"][scenario_name] for e in ranked[:1]])
    near_best = (
        [e for e in ranked if e["speedup"][scenario_name] >= 0.95 * sweep_best_trial]
        if sweep_best_trial > 1.0
        else []  # no quantized configuration beat float in the sweep
    )

    searches = []
    for seed in plan.seeds:
        log(f"  search {task.model_name} {tag} seed {seed}")
        result = run_search(
            task,
            plan,
            scenario_name,
            budget_text,
            seed,
            folder / f"search-{tag}-s{seed}{plan.suffix}.json",
            tracking_uri,
            run_missing,
        )
        result["seed"] = seed
        result["trials_to_feasible"] = trials_to(result["records"])
        result["trials_to_95"] = trials_to(result["records"], 0.95 * sweep_best_trial)
        # autoquant's own seconds: the search's wall time less quantizing and measuring
        work = sum(result["work_seconds"].values())
        result["own_seconds"] = max(0.0, result["wall_seconds"] - work)
        result["own_per_trial"] = result["own_seconds"] / max(1, len(result["records"]))
        searches.append(result)

    entries: dict[str, tuple[str, QuantConfig]] = {
        _key(QuantConfig(method="fp32")): ("float", QuantConfig(method="fp32"))
    }
    for label, config in PLAIN_RECIPES.items():
        entries.setdefault(_key(config), (label, config))
    for e in ranked[:SWEEP_FINALISTS]:
        config = QuantConfig.from_dict(e["config"])
        entries.setdefault(_key(config), (config.label(), config))
    for s in searches:
        config = QuantConfig.from_dict(s["config"])
        entries.setdefault(_key(config), (config.label(), config))
    options = deployment_options(plan.search_space(), sweep, ranked)
    for configs in options.values():
        for config in configs:
            entries.setdefault(_key(config), (config.label(), config))
    log(f"  head-to-head {task.model_name} {tag}: {len(entries)} models")
    measured = head_to_head(
        task, entries, scenario, folder / f"final-{tag}{plan.suffix}.json", run_missing
    )

    def at(config: QuantConfig) -> dict:
        return measured[_key(config)]

    rows = [
        _row("float", "float (fp32), timed against itself", at(QuantConfig(method="fp32")), budget)
    ]
    for label, config in PLAIN_RECIPES.items():
        rows.append(_row("recipe", label, at(config), budget))
    sweep_rows = [
        _row(
            "sweep",
            QuantConfig.from_dict(e["config"]).label(),
            at(QuantConfig.from_dict(e["config"])),
            budget,
        )
        for e in ranked[:SWEEP_FINALISTS]
    ]
    sweep_rows = [r for r in sweep_rows if "error" not in r]
    best_sweep = max(sweep_rows, key=lambda r: r["speedup"], default=None)
    if best_sweep is None or best_sweep["speedup"] < 1.0:
        # float is the baseline itself: 1.0 by definition, whatever its copy measured
        best_sweep = {**rows[0], "label": "float: no quantized config is faster", "speedup": 1.0}
    rows.append({**best_sweep, "kind": "sweep best"})
    best_is_float = best_sweep["kind"] == "float"
    for kind, configs in options.items():
        measured_rows = [_row(kind, c.label(), at(c), budget) for c in configs]
        ok = [r for r in measured_rows if "error" not in r]
        rows.append(max(ok, key=lambda r: r["speedup"]) if ok else measured_rows[0])
    for s in searches:
        row = _row(
            "autoquant",
            f"seed {s['seed']}: {s['label']}",
            at(QuantConfig.from_dict(s["config"])),
            budget,
            method=s["config"]["method"],
            trials=len(s["records"]),
            trials_to_feasible=s["trials_to_feasible"],
            trials_to_95=s["trials_to_95"],
            wall_seconds=s["wall_seconds"],
            own_seconds=s["own_seconds"],
            validation=s.get("validation"),  # None in searches cached before intervals
        )
        if row.get("validation") and row["validation"]["ci_low"] is not None and "drop" in row:
            low, high = row["validation"]["ci_low"], row["validation"]["ci_high"]
            row["test_in_interval"] = low <= row["drop"] <= high
        rows.append(row)
    chosen = [r for r in rows if r["kind"] == "autoquant"]
    speedups = [r.get("speedup", 0.0) for r in chosen]
    median = statistics.median(speedups)
    all_float = all(r["method"] == "fp32" for r in chosen)
    recipes_within = [r for r in rows if r["kind"] == "recipe" and r.get("within")]
    float_test = at(QuantConfig(method="fp32")).get("float_test_accuracy")
    seconds = sweep_seconds(sweep, scenario_name)
    checks = {
        "median_speedup": median,
        "sweep_best_speedup": best_sweep["speedup"],
        "reaches_95": median >= 0.95 * best_sweep["speedup"] or (best_is_float and all_float),
        "never_slower": all(
            r.get("speedup", 0.0) >= 1 - NOISE or r["method"] == "fp32" for r in chosen
        ),
        "budget_on_test": all(r.get("within", False) for r in chosen),
        "beats_recipes": all(median >= r["speedup"] * (1 - NOISE) for r in recipes_within),
        # where the space mixes deployments: at least as fast as each option within budget
        "beats_options": all(
            median >= r["speedup"] * (1 - NOISE)
            for r in rows
            if r["kind"] in options and r.get("within")
        )
        if options
        else None,
        # Could any configuration meet both targets? Of the sweep's quantized ones within budget
        # on validation and within 95% of its fastest (its own timing), those that also hold
        # the budget on the test split; None when float is the sweep's best.
        "near_best_on_test": (
            sum(_holds_on_test(e, float_test, budget) for e in near_best),
            len(near_best),
        )
        if near_best and float_test is not None
        else None,
        "search_share": statistics.mean(s["wall_seconds"] for s in searches) / seconds,
        # autoquant's own time (Optuna, MLflow, bookkeeping): per study and per trial
        "own_seconds": statistics.mean(s["own_seconds"] for s in searches),
        "own_per_trial": statistics.mean(s["own_per_trial"] for s in searches),
        # seeds whose test drop lies within the interval their validation drop predicted
        "test_in_interval": (
            sum(bool(r.get("test_in_interval")) for r in chosen),
            sum("test_in_interval" in r for r in chosen),
        ),
    }
    return Cell(
        model=task.model_name,
        scenario=scenario_name,
        budget=budget,
        float_accuracy=float_accuracy,
        rows=rows,
        sweep={
            "configs": len(sweep),
            "failed": sum("error" in e for e in sweep.values()),
            "feasible": len(quantized),
            "quantized": sum(not _plain_float(e) for e in sweep.values()),
            "seconds": seconds,
        },
        searches=searches,
        checks=checks,
        commits={
            e.get("commit") or "unrecorded"
            for e in [*sweep.values(), *searches, *measured.values()]
        },
    )


def run_benchmark(
    plan: Plan,
    *,
    cache: Path | None = None,
    tracking_uri: str | None = None,
    log: Callable[[str], None] = print,
    run_missing: bool = True,
    skipped: list[str] | None = None,
) -> list[Cell]:
    """Run (or resume) ``plan``; returns one Cell per model, scenario and budget.

    With ``run_missing=False`` nothing is measured: the cells whose pieces are all cached are
    returned, and what is missing is appended to ``skipped``.
    """
    space = plan.search_space()
    root = (cache or cache_dir()) / "bench" / space_tag(space)
    root.mkdir(parents=True, exist_ok=True)
    tracking_uri = tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    configs = space_configs(space)
    scenarios = [get_scenario(s) for s in plan.scenarios]
    cells = []
    skipped = [] if skipped is None else skipped
    for model in plan.models:
        task = digits_task(model, log=log)
        folder = root / model
        log(f"{model}: sweep of {len(configs)} configurations of the {plan.space!r} space")
        try:
            # a configuration's measurements do not depend on the space it was swept in
            sweeps = root.parent / "sweeps" / f"{model}-{model_fingerprint(task.model)}.json"
            sweep = run_sweep(task, configs, scenarios, sweeps, run_missing)
        except NotMeasured as missing:
            skipped.append(f"{model}: {missing}")
            continue
        float_accuracy = score(task.model, task.validation_data, task)
        for scenario in plan.scenarios:
            for budget in plan.budgets:
                try:
                    cell = run_cell(
                        task,
                        plan,
                        sweep,
                        float_accuracy,
                        scenario,
                        budget,
                        folder,
                        tracking_uri,
                        log,
                        run_missing,
                    )
                except NotMeasured as missing:
                    skipped.append(f"{model} {scenario} {budget}: {missing}")
                    continue
                cells.append(cell)
    return cells


# -- the report ------------------------------------------------------------------------------
def _fmt(value, pattern: str, missing: str = "-") -> str:
    return missing if value is None else format(value, pattern)


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _validation_text(row: dict) -> str:
    """A search's validation drop with its 95 % interval, and whether the test drop fell in it
    (a miss in bold); "-" for other rows and searches cached before intervals."""
    validation = row.get("validation")
    if not validation or validation.get("ci_low") is None:
        return "-"
    text = f"{validation['drop']:.2f} ({validation['ci_low']:.2f} to {validation['ci_high']:.2f})"
    if validation.get("upper") is not None:
        text += f", upper {validation['upper']:.2f}"
    return text + ("" if row.get("test_in_interval", True) else " **test outside**")


#: Where RESULTS.md's hand-run sections begin; ``write_report`` keeps them.
KEPT_SECTIONS = "<!-- sections below: other experiments, kept by autoquant bench -->"


def write_report(
    cells: list[Cell],
    plan: Plan,
    path: Path,
    command: str,
    seconds: float,
    skipped: list[str] = (),
) -> None:
    """``RESULTS.md``: machine, versions, plan, the acceptance summary and every row."""
    from autoquant.tracking.tracker import machine_info

    info = machine_info()
    space = plan.search_space()
    lines = [
        "# Benchmark: autoquant against an exhaustive sweep, the plain recipes and float",
        "",
        f"Produced by `{command}` on {datetime.date.today().isoformat()} in "
        f"{seconds / 60:.0f} min (cached pieces are reused; times below are each piece's own).",
        f"Machine: {info['machine.cpu']} ({info['machine.cpu_capability']} kernels), "
        f"{info['machine.cores']} cores; "
        f"torch {info['version.torch']}, optuna {info['version.optuna']}, "
        f"mlflow {info['version.mlflow']}, autoquant {info['version.autoquant']}.",
        f"Plan: models {', '.join(plan.models)}; scenarios {', '.join(plan.scenarios)}; budgets "
        f"{', '.join(plan.budgets)} (absolute); {plan.trials} trials per search, seeds "
        f"{', '.join(map(str, plan.seeds))}; space `{plan.space}` (methods "
        f"{', '.join(space.methods)}; backends {', '.join(space.backends)}; layers "
        f"{space.layer_mode}); the sweep covers that space with every layer quantized."
        + (
            f" Confidence mode {plan.confidence:g}: a search's configuration is within the "
            f"budget only when the one-sided upper {plan.confidence:.0%} bound of its "
            f"validation drop is."
            if plan.confidence
            else ""
        ),
        "Measured by autoquant commits: "
        + "; ".join(
            f"{commit} ({', '.join(sorted({c.model for c in cells if commit in c.commits}))})"
            for commit in sorted(set().union(*(c.commits for c in cells)))
        )
        + " (a resumed run keeps the pieces measured before; `unrecorded`: before commits "
        "were recorded).",
        "",
        "Speedups are float latency / model latency in one interleaved head-to-head per model, "
        "scenario and budget (float against its own copy shows the noise); drops are on the "
        "held-out test split; test flips count the test examples whose answer differs from "
        "float's; feasibility in the sweep and the search is judged on the validation split, "
        "as a search must. Sweep's near-best holding on test: of the sweep's quantized "
        "configurations within budget on validation and within 95% of its fastest (by its own "
        "timing), how many also hold the budget on the test split; at 0, no configuration the "
        "sweep measured meets both the 95% and the test-split targets ('-': float was the sweep's "
        "fastest, or float could not be scored on test). Test drop in val. 95% CI: of the seeds, "
        "how many had a test drop within the 95 % interval of the validation drop of the "
        "configuration they chose (that interval is for the drop on data like the validation "
        "split; the test split's own sampling adds to the spread, and choosing the best of "
        "many trials biases the validation drop low). Autoquant's own seconds: a search's wall "
        "time less the time spent quantizing, calibrating, fine-tuning, scoring and timing "
        "(Optuna, MLflow, bookkeeping), per study and per trial.",
        "",
        "## Summary",
        "",
        "| model | scenario | budget | feasible in sweep | sweep best | autoquant median | "
        "ratio | >= 95% | never slower | budget on test | sweep's near-best holding on test | "
        ">= recipes | >= deployment options | search / sweep time | test drop in val. 95% CI | "
        "autoquant's own s per study (per trial) |",
        "|" + "---|" * 16,
    ]
    for c in cells:
        k = c.checks
        share = f"{k['search_share']:.0%}" + ("" if k["search_share"] <= 0.25 else " **>25%**")
        inside, judged = k["test_in_interval"]
        in_interval = f"{inside}/{judged}" if judged else "-"
        own = f"{k['own_seconds']:.1f} ({k['own_per_trial']:.2f})"
        ratio = k["median_speedup"] / k["sweep_best_speedup"]
        held = k["near_best_on_test"]
        near = "-" if held is None else f"{held[0]}/{held[1]}"
        lines.append(
            f"| {c.model} | {c.scenario} | {c.budget} | "
            f"{c.sweep['feasible']}/{c.sweep['quantized']} | {k['sweep_best_speedup']:.2f}x | "
            f"{k['median_speedup']:.2f}x | {ratio:.2f} | {_yes(k['reaches_95'])} | "
            f"{_yes(k['never_slower'])} | {_yes(k['budget_on_test'])} | {near} | "
            f"{_yes(k['beats_recipes'])} | "
            f"{'-' if k['beats_options'] is None else _yes(k['beats_options'])} | "
            f"{share} | {in_interval} | {own} |"
        )
    lines += ["", "## Every row", ""]
    for c in cells:
        lines += [
            f"### {c.model}, {c.scenario}, budget {c.budget}",
            "",
            f"Float validation accuracy {c.float_accuracy:.2%}. Sweep: {c.sweep['configs']} "
            f"configurations ({c.sweep['failed']} failed), {c.sweep['feasible']} quantized ones "
            f"within budget on validation, {c.sweep['seconds'] / 60:.1f} min for this scenario.",
            "",
            "| kind | configuration | test acc | drop | test flips | speedup | size | "
            "within budget (test) | validation drop (95% CI) | trials run | trials to feasible | "
            "trials to 95% | wall s | own s |",
            "|" + "---|" * 14,
        ]
        for r in c.rows:
            if "error" in r:
                lines.append(f"| {r['kind']} | {r['label']} | failed: {r['error']} |" + " |" * 11)
                continue
            lines.append(
                f"| {r['kind']} | {r['label']} | {r['test_accuracy']:.2%} | {r['drop']:.2f} | "
                f"{_fmt(r.get('test_flips'), 'd')} | {r['speedup']:.2f}x | "
                f"{r['size_ratio']:.2f} | {'yes' if r['within'] else 'no'} | "
                f"{_validation_text(r)} | "
                f"{_fmt(r.get('trials'), 'd')} | {_fmt(r.get('trials_to_feasible'), 'd')} | "
                f"{_fmt(r.get('trials_to_95'), 'd')} | "
                f"{_fmt(r.get('wall_seconds'), '.0f')} | {_fmt(r.get('own_seconds'), '.1f')} |"
            )
        lines.append("")
    if skipped:
        lines += [
            "## Not measured yet",
            "",
            "Rerun the command (without `--report-only`) to measure:",
            "",
        ]
        lines += [f"- {item}" for item in skipped]
    # Sections measured by other experiments (the pretrained models) follow a marker and are
    # kept when the benchmark's own part is written again.
    kept = path.read_text().partition(KEPT_SECTIONS)[1:] if path.exists() else ("", "")
    path.write_text("\n".join(lines) + "\n" + "".join(kept))


def plot(cells: list[Cell], path: Path) -> None:
    """Speedups per cell: the best plain recipe within budget, the sweep's best, autoquant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, recipe, best, ours = [], [], [], []
    for c in cells:
        labels.append(f"{c.model}\n{c.scenario}\n{c.budget}")
        within = [r["speedup"] for r in c.rows if r["kind"] == "recipe" and r.get("within")]
        recipe.append(max(within, default=0.0))
        best.append(c.checks["sweep_best_speedup"])
        ours.append(c.checks["median_speedup"])
    x = range(len(cells))
    figure, axes = plt.subplots(figsize=(max(6, 1.1 * len(cells)), 4.5))
    width = 0.27
    axes.bar([i - width for i in x], recipe, width, label="best plain recipe within budget")
    axes.bar(list(x), best, width, label="exhaustive sweep's best")
    axes.bar([i + width for i in x], ours, width, label="autoquant (median of seeds)")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks(list(x), labels, fontsize=7)
    axes.set_ylabel("speedup over float (test-split budget)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
