"""Sweep report pieces on small hand-made results tables: method comparison (selection on dev, mean ± sd
across seeds, paired and unpaired gains), the Optuna study rebuilt from a table, reading a results file
without the sweep's record, the command line's errors, and the Grafana dashboard's Ray metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from infnet.report.compare import compare
from infnet.report.sources import ResultSet, SourceError, expand, from_file
from infnet.report.study import build_study
from infnet.report.tables import comparison_table
from infnet.search_space import parse_search_space

ROOT = Path(__file__).resolve().parents[1]
RESULT_COLUMNS = ["dev_metric", "test_metric", "test_f1_at_0.5", "metric", "epochs", "wall_seconds", "finished_at", "mlflow_run_id"]


def table(rows: list[dict], params: list[str]) -> pa.Table:
    """A results table in the column order of ``infnet.tune.results`` (params between status and dev_metric)."""
    columns = ["trial_id", "status", *params, *RESULT_COLUMNS]
    return pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])


def row(trial: str, status: str, dev: float | None, test: float | None, metric: str = "f1", **params: object) -> dict:
    at_half = test and test - 5 if metric == "f1" else None
    return {"trial_id": trial, "status": status, "dev_metric": dev, "test_metric": test, "test_f1_at_0.5": at_half, "metric": metric,
            "epochs": 4, "wall_seconds": 10.0, **params}


def result_set(method: str, rows: list[dict], params: list[str], seed: int = 0, data: str = "bibtex") -> ResultSet:
    config = {"method": {"name": method}, "data": {"name": data}, "trainer": {"seed": seed}}
    return ResultSet(f"{method}-{seed}", table(rows, params), tuple(params), config=config)


def test_comparison_selects_on_dev_per_seed_and_pairs_gains_by_seed() -> None:
    implicit = result_set("implicit", [  # one sweep that searches the seed
        row("a", "completed", 60.0, 61.0, **{"trainer.seed": 0, "method.inner_steps": 3}),
        row("b", "completed", 62.0, 59.0, **{"trainer.seed": 0, "method.inner_steps": 5}),  # best dev of seed 0
        row("c", "stopped", 70.0, None, **{"trainer.seed": 0, "method.inner_steps": 1}),  # not completed: never selected
        row("d", "completed", 55.0, 57.0, **{"trainer.seed": 1, "method.inner_steps": 2}),
    ], ["trainer.seed", "method.inner_steps"])
    ce = [result_set("ce", [row("e", "completed", 61.0, 58.0, **{"method.lr": 0.001}),  # one sweep per seed
                            row("f", "error", None, None, **{"method.lr": 1.0})], ["method.lr"], seed=0),
          result_set("ce", [row("g", "completed", 50.0, 52.0, **{"method.lr": 0.002})], ["method.lr"], seed=1)]
    spen = result_set("spen", [row("h", "completed", 58.0, 56.0, **{"method.lr_energy": 1e-4})], ["method.lr_energy"], seed=7)
    other_data = result_set("ce", [row("i", "completed", 30.0, 31.0, **{"method.lr": 0.001})], ["method.lr"], data="delicious")

    results = {(r.data, r.method): r for r in compare([implicit, *ce, spen, other_data])}

    imp, base, unpaired = results["bibtex", "implicit"], results["bibtex", "ce"], results["bibtex", "spen"]
    assert {s: r["trial_id"] for s, r in imp.selected.items()} == {0: "b", 1: "d"}
    assert imp.best_config == {"method.inner_steps": 5} and imp.trials == 4 and imp.gain is None
    assert str(imp.stat("test_metric")) == "58.00 ± 1.41" and str(base.stat("test_metric")) == "55.00 ± 4.24" and base.trials == 3
    assert base.gain.paired and base.gain.stat.mean == 3.0 and base.gain.stat.n == 2  # (59-58, 57-52)
    assert str(base.gain) == "2 seeds: no claim" and base.gain.exceeds_noise is None  # fewer than MIN_SEEDS
    assert not unpaired.gain.paired and str(unpaired.gain) == "unpaired: no claim (+2.00)"  # mean 58 - 56, no common seed
    assert results["delicious", "ce"].gain is None  # no implicit sweep on that data set

    cells = comparison_table([imp, base], "implicit")
    assert cells.marked == {0} and cells.rows[1][8] == "2 seeds: no claim" and cells.rows[1][2] == "0, 1"
    assert (imp.compute_seconds, base.compute_seconds) == (40.0, 30.0)  # every trial's seconds, failed ones too
    assert cells.columns[4] == "compute (trial-s)" and cells.rows[0][4] == "40"


def test_comparison_names_each_task_metric() -> None:
    pos = [result_set(m, [row(m, "completed", dev, test, metric="acc")], [], data="ud_ewt")
           for m, dev, test in (("implicit", 93.0, 92.5), ("ce", 93.4, 92.0))]
    ner = result_set("ce", [row("n", "completed", 80.0, 75.0)], [], data="conll2003")

    results = compare(pos)
    assert [r.method for r in results] == ["implicit", "ce"]  # by test accuracy, though ce has the better dev
    assert {r.metric.key for r in results} == {"acc"} and results[1].gain.stat.mean == pytest.approx(0.5)
    cells = comparison_table(results, "implicit")
    assert cells.columns[5:8] == ["dev accuracy", "test accuracy", "gain of implicit (Δ test accuracy)"]  # no F1 @0.5 on tagging
    assert cells.rows[1][7] == "one seed: no claim"  # ce's row: the gain column follows test accuracy
    assert comparison_table(compare([*pos, ner]), "implicit").columns[5:7] == ["dev metric", "test metric"]  # each data set in its own


def test_gain_claims_need_three_paired_seeds_and_say_whether_they_exceed_seed_noise() -> None:
    def sweeps(method: str, tests: list[float]) -> list[ResultSet]:
        return [result_set(method, [row(f"{method}{s}", "completed", 50.0, t)], [], seed=s) for s, t in enumerate(tests)]

    def gain_of(imp: list[float], ce: list[float]) -> str:
        results = {r.method: r for r in compare(sweeps("implicit", imp) + sweeps("ce", ce))}
        return str(results["ce"].gain)

    assert gain_of([51.0], [50.0]) == "one seed: no claim"
    assert gain_of([51.0, 52.0, 53.0], [50.0, 51.0, 52.1]) == "+0.97 ± 0.06 (paired, 3 seeds): exceeds seed noise"
    assert gain_of([51.0, 50.0, 53.0], [50.0, 51.0, 52.0]) == "+0.33 ± 1.15 (paired, 3 seeds): within seed noise"


def test_study_rebuilt_from_a_results_table() -> None:
    spec = {"params": {
        "method.lr_energy": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "method.solver": {"type": "categorical", "choices": ["cg", "identity"]},
        "method.iters": {"type": "int", "low": 2, "high": 8, "when": {"method.solver": "cg"}},
        "model.hidden": {"type": "categorical", "choices": [[150, 150], [300]]},
    }}
    space = parse_search_space(spec, "t")
    rows = [
        {**row("late", "completed", 60.0, 59.0, **{"method.lr_energy": 1e-4, "method.solver": "identity", "model.hidden": "[300]"}),
         "finished_at": 30.0},
        {**row("early", "completed", 50.0, 49.0, **{"method.lr_energy": 1e38, "method.solver": "cg", "method.iters": 3,
                                                     "model.hidden": "[150, 150]"}), "finished_at": 10.0},
        {**row("asha", "stopped", 40.0, None, **{"method.lr_energy": 2e-4, "method.solver": "cg", "method.iters": 8,
                                                  "model.hidden": "[300]"}), "finished_at": 20.0},
        {**row("nan", "error", 35.0, None, **{"method.lr_energy": 5e-4, "method.solver": "cg", "method.iters": 2,
                                               "model.hidden": "[300]"}), "finished_at": 25.0},
    ]
    rs = ResultSet("t", table(rows, space.names), tuple(space.names), space)

    study = build_study(rs, {"asha": {1: 30.0, 2: 40.0}})

    trials = {t.user_attrs["trial_id"]: t for t in study.trials}
    assert [t.user_attrs["trial_id"] for t in study.trials] == ["early", "asha", "nan", "late"]  # in finishing order
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert study.best_trial.user_attrs["trial_id"] == "late" and study.best_value == 60.0
    assert "method.iters" not in trials["late"].params  # inactive conditional parameter
    assert trials["early"].distributions["method.lr_energy"].high == 1e38  # widened to the point evaluated outside the range
    assert trials["late"].distributions["method.lr_energy"].log and trials["late"].params["model.hidden"] == "[300]"
    assert trials["asha"].intermediate_values == {1: 30.0, 2: 40.0}
    assert trials["early"].intermediate_values == {4: 50.0}  # no history: the last reported value at the last epoch
    assert study.user_attrs["skipped"] == []


def test_results_file_without_the_sweep_record(tmp_path: Path) -> None:
    rows = [row("a", "completed", 60.0, 59.0, **{"method.inner_steps": 3, "method.lam": 0.5, "method.solver": "cg"}),
            row("b", "completed", 61.0, 58.0, **{"method.inner_steps": 7, "method.lam": 200.0, "method.solver": "identity"})]
    path = tmp_path / "copied.parquet"
    pq.write_table(table(rows, ["method.inner_steps", "method.lam", "method.solver"]), path)

    rs = from_file(str(path))

    assert rs.params == ("method.inner_steps", "method.lam", "method.solver") and rs.space is None and rs.parent_run_id is None
    assert rs.method == "unknown" and rs.location == str(tmp_path)
    dists = build_study(rs).trials[0].distributions
    assert (dists["method.inner_steps"].low, dists["method.inner_steps"].high) == (3, 7)
    assert dists["method.lam"].log and set(dists["method.solver"].choices) == {"cg", "identity"}


def test_results_file_of_an_older_version_reads_as_f1(tmp_path: Path) -> None:
    rows = [row("a", "completed", 60.0, 59.0, **{"method.lam": 0.5}), row("b", "stopped", 61.0, None, **{"method.lam": 2.0})]
    old = table(rows, ["method.lam"]).drop_columns(["metric"]).rename_columns(
        ["trial_id", "status", "method.lam", "dev_f1", "test_f1", "test_f1_at_0.5", "epochs", "wall_seconds", "finished_at",
         "mlflow_run_id"])
    pq.write_table(old, tmp_path / "results.parquet")

    rs = from_file(str(tmp_path / "results.parquet"))

    assert rs.params == ("method.lam",) and rs.metric.key == "f1"
    assert [r["trial_id"] for r in rs.ranked()] == ["a", "b"] and rs.ranked()[0]["test_metric"] == 59.0


def test_sources_that_are_not_results(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no results\.parquet"):
        expand(str(tmp_path))
    with pytest.raises(SourceError, match="not a results file"):
        expand(str(tmp_path / "missing"))
    assert expand("0123456789abcdef0123456789abcdef") == []  # an MLflow run id
    proc = subprocess.run([sys.executable, "-m", "infnet.report", str(tmp_path / "missing")], check=False, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert proc.returncode != 0 and "infnet.report: " in proc.stderr and "not a results file" in proc.stderr


def test_grafana_dashboard_queries_metrics_that_ray_exports() -> None:
    import ray
    from ray.tune.trainable.function_trainable import wrap_function

    dashboard = json.loads((ROOT / "dashboards" / "grafana_ray_sweep.json").read_text())
    ray_panels = Path(ray.__file__).parent / "dashboard" / "modules" / "metrics" / "dashboards" / "default_dashboard_panels.py"
    known = set(re.findall(r"\bray_[a-z_]+", ray_panels.read_text()))  # the metrics Ray's own Grafana dashboards query

    panels = dashboard["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bray_[a-z_]+", e)}
    assert used and used <= known, f"not exported by Ray: {used - known}"
    assert {"ray_node_gpus_utilization", "ray_actors"} <= used  # GPU utilisation per node, trials running
    assert any("by (instance, GpuIndex" in e for e in exprs)
    trial_actor = wrap_function(lambda config: None).__name__  # the actor class Tune runs a function trainable's trials in
    assert any(f'Name="{trial_actor}"' in e for e in exprs)
    assert len({p["id"] for p in panels}) == len(panels) and all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "SessionName", "Instance"} <= variables
    assert all(f"${v}" in "".join(exprs) for v in ("SessionName", "Instance"))
