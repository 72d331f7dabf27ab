"""The report's tables as plain text cells (the template lays them out): trials, best config, solver
behaviour per trial, and the method comparison."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from infnet.report.compare import MethodResult
from infnet.task_metric import TaskMetric

#: Solver diagnostics summarised per trial: (metric, column title, how the epochs are summarised).
SOLVER_SUMMARY = (
    ("train/solver/iterations", "iterations (mean)", "mean"),
    ("train/solver/residual", "rel. residual (median)", "median"),
    ("train/solver/converged", "converged (%)", "percent"),
    ("train/solver/fallback", "fell back (%)", "percent"),
    ("train/solver/negative_curvature", "negative curvature (%)", "percent"),
    ("train/solver/diverged", "diverged (%)", "percent"),
    ("train/hypergrad/norm", "hypergradient norm (median)", "median"),
)


@dataclass
class Table:
    """Column titles and rows of cells; ``marked``: indices of rows to emphasise."""

    columns: list[str]
    rows: list[list[str]]
    marked: set[int] = field(default_factory=set)


def fmt(value: Any) -> str:
    """A cell: ``–`` for missing, 4 significant digits for floats, compact JSON for list choices."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.dumps(json.loads(value), separators=(",", ":"))
        except ValueError:
            return value
    return str(value)


def pct(value: float | None) -> str:
    """A percentage cell (two decimals), ``–`` for missing."""
    return "–" if value is None else f"{value:.2f}"


def short(name: str) -> str:
    """``method.inner_steps`` -> ``inner_steps`` (column titles)."""
    return name.rsplit(".", 1)[-1]


def trials_table(ranked: Sequence[dict[str, Any]], params: Sequence[str], metric: TaskMetric) -> Table:
    """Every trial, best first (row 0 is the sweep's best when it completed)."""
    columns = ["#", "trial", "status", *map(short, params), f"dev {metric.label}", f"test {metric.label}", "epochs", "wall s", "error"]
    rows = [[str(i + 1), r["trial_id"], r["status"], *(fmt(r.get(p)) for p in params), pct(r.get("dev_metric")), pct(r.get("test_metric")),
             fmt(r.get("epochs")), fmt(r.get("wall_seconds")), (r.get("error") or "")[:120]] for i, r in enumerate(ranked)]
    return Table(columns, rows, {0} if ranked and ranked[0]["status"] == "completed" else set())


def config_table(row: dict[str, Any], params: Sequence[str]) -> Table:
    """The sampled values of one trial (its inactive conditional parameters left out)."""
    return Table(["parameter", "value"], [[p, fmt(row[p])] for p in params if row.get(p) is not None])


def solver_table(history: Any, labels: dict[str, str]) -> Table | None:
    """Solver behaviour over training per trial (``labels``: trial id -> label, in order), or None when
    no trial logged solver diagnostics."""
    present = [s for s in SOLVER_SUMMARY if s[0] in set(history["metric"])]
    if not present:
        return None
    rows = []
    for trial_id, label in labels.items():
        mine = history[history["trial_id"] == trial_id]
        cells = [label, fmt(int(mine["epoch"].nunique()) if len(mine) else None)]
        for metric, _, how in present:
            values = mine.loc[mine["metric"] == metric, "value"]
            summary = None if values.empty else values.median() if how == "median" else values.mean()
            cells.append(fmt(None if summary is None else 100 * summary if how == "percent" else float(summary)))
        rows.append(cells)
    return Table(["trial", "epochs logged", *(title for _, title, _ in present)], rows)


def solver_verdict(history: Any) -> str:
    """One sentence on how the hypergradient solver behaved over all logged epochs of all trials."""
    solver = history[history["metric"].str.startswith("train/solver/")]
    if solver.empty:
        return "No solver diagnostics were logged (a method without a hypergradient solve, or no per-epoch history)."

    def values(name: str) -> Any:
        return solver.loc[solver["metric"] == f"train/solver/{name}", "value"]

    parts = [text.format(100 * values(name).mean()) for name, text in (
        ("fallback", "fell back on {:.1f}% of outer steps"), ("negative_curvature", "met negative curvature on {:.1f}%"),
        ("diverged", "diverged on {:.1f}%")) if len(values(name))]
    if len(values("iterations")):
        parts.append(f"{values('iterations').mean():.1f} iterations on average")
    if len(values("residual")):
        parts.append(f"median relative residual {values('residual').median():.2g}")
    return f"Over {solver['trial_id'].nunique()} trials: " + "; ".join(parts) + "."


def comparison_table(results: Sequence[MethodResult], reference: str) -> Table:
    """The method comparison (see :mod:`infnet.report.compare`); the reference method's rows marked. The
    column of test F1 at threshold 0.5 is there only when some result has it (multi-label)."""
    label = metric_label(results)
    at_half = any(r.stat("test_f1_at_0.5") for r in results)
    columns = ["data", "method", "seeds", "trials", "compute (trial-s)", f"dev {label}", f"test {label}",
               *(["test F1 @0.5"] if at_half else []), f"gain of {reference} (Δ test {label})", "best config"]
    rows = [[r.data, r.method, ", ".join(fmt(s) for s in sorted(r.selected, key=str)), str(r.trials), f"{r.compute_seconds:.0f}",
             fmt(r.stat("dev_metric")), fmt(r.stat("test_metric")), *([fmt(r.stat("test_f1_at_0.5"))] if at_half else []),
             str(r.gain) if r.gain else "–", " ".join(f"{short(k)}={fmt(v)}" for k, v in r.best_config.items())] for r in results]
    return Table(columns, rows, {i for i, r in enumerate(results) if r.method == reference})


def metric_label(results: Sequence[MethodResult]) -> str:
    """The metric's label when every result shares it (``F1``, ``accuracy``), else ``metric`` (e.g. NER and POS
    sweeps compared in one report: each data set's rows are in its own metric)."""
    labels = {r.metric.label for r in results}
    return labels.pop() if len(labels) == 1 else "metric"


__all__ = ["SOLVER_SUMMARY", "Table", "comparison_table", "config_table", "fmt", "metric_label", "pct", "solver_table",
           "solver_verdict", "trials_table"]
