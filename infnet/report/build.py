"""Build a sweep report: figures, tables and the method comparison of one or more sweeps, rendered to
``report.html`` (self-contained) plus one PNG per figure under ``figures/``.

Where it goes: a single sweep's report is written to ``<sweep folder>/report/`` (beside
``results.parquet``) and logged as artifacts ``report/...`` of the sweep's MLflow parent run; a report
over several sweeps goes to ``--out`` (default ``./infnet-report``) only.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs

from infnet.report.charts import Figure, error_bars
from infnet.report.compare import compare
from infnet.report.figures import FOCUS, curve_figures, optuna_figures
from infnet.report.history import sweep_history
from infnet.report.render import write_report
from infnet.report.sources import ResultSet, load_sources
from infnet.report.study import build_study
from infnet.report.tables import (
    Table,
    comparison_table,
    config_table,
    metric_label,
    solver_table,
    solver_verdict,
    trials_table,
)
from infnet.sweep_layout import (
    FIGURES_DIR,
    REPORT_DIR,
    REPORT_FILE,
    absolute_storage,
    filesystem,
    join,
)

DEFAULT_OUT = "infnet-report"


@dataclass
class Section:
    """One sweep's part of the report."""

    rs: ResultSet
    slug: str
    counts: dict[str, int]
    best: dict[str, Any] | None
    best_config: Table | None
    figures: list[Figure]
    trials: Table
    solver: Table | None
    solver_summary: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """What the template renders."""

    title: str
    command: str
    reference: str
    sections: list[Section]
    comparison: Table | None
    comparison_figure: Figure | None
    generated: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    def figures(self) -> list[Figure]:
        return ([self.comparison_figure] if self.comparison_figure else []) + [f for s in self.sections for f in s.figures]


def slugify(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "sweep"


def section(rs: ResultSet, slug: str, figure_dir: str, top: int, focus: Sequence[str]) -> Section:
    """Figures (their PNGs to go in ``figure_dir``) and tables of one sweep."""
    history, note = sweep_history(rs)
    best_so_far = history[history["metric"] == f"dev/best_{rs.metric.key}"]
    curves = {t: dict(zip(g["epoch"], 100 * g["value"], strict=True)) for t, g in best_so_far.groupby("trial_id")}
    study = build_study(rs, curves)
    ranked = rs.ranked()
    labels = {r["trial_id"]: f"#{i + 1} {r['trial_id']}" for i, r in enumerate(ranked)}
    top_labels = dict(list(labels.items())[:top])
    best = ranked[0] if ranked and ranked[0]["status"] == "completed" else None
    notes = [note] if note else []
    notes += [f"left out of the Optuna study: {s}" for s in study.user_attrs["skipped"]]
    statuses = [r["status"] for r in ranked]
    figures = optuna_figures(study, rs.params, rs.metric, focus) + curve_figures(history, top_labels, rs.metric)
    for f in figures:
        f.file = f"{figure_dir}/{f.name}.png"
    return Section(
        rs=rs, slug=slug, counts={s: statuses.count(s) for s in dict.fromkeys(statuses)}, best=best,
        best_config=config_table(best, rs.params) if best else None, figures=figures,
        trials=trials_table(ranked, rs.params, rs.metric), solver=solver_table(history, labels), solver_summary=solver_verdict(history),
        notes=notes,
    )


def comparison(sets: Sequence[ResultSet], reference: str) -> tuple[Table | None, Figure | None]:
    """The method comparison table and its chart (test metric mean ± sd per method; with two methods or more)."""
    import pandas as pd

    results = compare(sets, reference)
    if not results:
        return None, None
    if len(results) == 1:
        return comparison_table(results, reference), None
    several = len({r.data for r in results}) > 1
    test = f"test {metric_label(results)}"
    frame = pd.DataFrame([{"method": f"{r.data}/{r.method}" if several else r.method, test: r.stat("test_metric").mean,
                           "sd": r.stat("test_metric").sd or 0.0} for r in results])
    figure = error_bars(frame, "method_comparison", f"{test[0].upper()}{test[1:]} by method",
                        f"{test[0].upper()}{test[1:]} (multi-label: at the dev-tuned threshold) of each method's dev-selected trial, "
                        "mean ± sd across seeds.", x="method", y=test, error="sd", label=f"{test} (%)")
    return comparison_table(results, reference), figure


def assemble(sets: Sequence[ResultSet], command: str, reference: str = "implicit", top: int = 5,
             focus: Sequence[str] = FOCUS) -> Report:
    """The :class:`Report` of ``sets``."""
    table, figure = comparison(sets, reference)
    title = f"Sweep {sets[0].name}" if len(sets) == 1 else f"{len(sets)} sweeps: " + ", ".join(dict.fromkeys(rs.method for rs in sets))
    sections = []
    for i, rs in enumerate(sets):  # several sweeps: numbered (two may share a name), one figure folder each
        slug = f"{i + 1}-{slugify(rs.name)}" if len(sets) > 1 else slugify(rs.name)
        sections.append(section(rs, slug, f"{FIGURES_DIR}/{slug}" if len(sets) > 1 else FIGURES_DIR, top, focus))
    if figure is not None:
        figure.file = f"{FIGURES_DIR}/{figure.name}.png"
    return Report(title, command, reference, sections, table, figure)


def publish(staging: Path, destination: str) -> None:
    """Copy the staged report to ``destination`` (absolute local folder or URI), replacing an earlier report's
    ``report.html`` and ``figures/`` (nothing else in the folder is touched)."""
    fs, root = filesystem(destination)
    fs.create_dir(root, recursive=True)
    if fs.get_file_info(join(root, FIGURES_DIR)).type == pyarrow.fs.FileType.Directory:
        fs.delete_dir(join(root, FIGURES_DIR))
    pyarrow.fs.copy_files(str(staging), root, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)


def build_report(sources: Sequence[str], out: str | None = None, tracking_uri: str | None = None, reference: str = "implicit",
                 top: int = 5, focus: Sequence[str] = FOCUS, log_to_mlflow: bool = True, template: str | None = None) -> dict[str, Any]:
    """Build the report of ``sources`` (see :func:`infnet.report.sources.load_sources`), write it to ``out``
    (default: the sweep folder's ``report/`` for one sweep, else ``./infnet-report``) and, for one sweep
    with a known parent run and ``log_to_mlflow``, log it to that run. Returns ``report`` (path of the
    HTML), ``figures`` (PNG paths), ``mlflow_run_id`` (the run it was logged to, or None) and ``notes``."""
    sets = load_sources(sources, tracking_uri)
    command = shlex.join(["python", "-m", "infnet.report", *sources] + (["--tracking-uri", tracking_uri] if tracking_uri else []))
    report = assemble(sets, command, reference, top, focus)
    single = sets[0] if len(sets) == 1 else None
    destination = absolute_storage(out or (join(single.location, REPORT_DIR) if single and single.location else DEFAULT_OUT))
    logged = single.parent_run_id if single and log_to_mlflow and single.tracking_uri and single.parent_run_id else None
    with tempfile.TemporaryDirectory() as d:
        files = write_report(report, Path(d), template)
        publish(Path(d), destination)
        if logged:
            import mlflow

            mlflow.MlflowClient(single.tracking_uri).log_artifacts(logged, d, REPORT_DIR)
    base = destination.rstrip("/")
    return {
        "report": f"{base}/{REPORT_FILE}",
        "figures": [f"{base}/{f}" for f in files if f.endswith(".png")],
        "mlflow_run_id": logged,
        "notes": [n for s in report.sections for n in s.notes] + [f"{f.name}: {f.note}" for s in report.sections for f in s.figures if f.note],
    }


__all__ = ["Report", "Section", "assemble", "build_report"]
