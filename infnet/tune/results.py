"""The sweep's results table: one row per Tune trial, written as Parquet (pyarrow).

Columns: ``trial_id``, ``status`` (completed | stopped | error | interrupted, see
:mod:`infnet.tune.child_runs`), one column per search-space parameter (the sampled value; list
choices as their JSON string; null where a conditional parameter was inactive), ``dev_metric`` (best dev
value %, of the task's selection metric), ``test_metric`` and ``test_f1_at_0.5`` (multi-label; completed trials
only), ``metric`` (which metric: "f1" | "acc", see :mod:`infnet.task_metric`), ``epochs`` run,
``train_seconds`` (training time inside the loop), ``wall_seconds`` (the trial's time in Tune),
``finished_at`` (unix time of its last result), ``failures`` (failed attempts, retried or final),
``start_epoch`` (the epoch the trial's last attempt resumed from a checkpoint; 0: never resumed), ``error``,
``mlflow_run_id``, ``node_id`` and ``node_ip`` (the Ray node of the trial's last attempt), and
``startup_seconds``: from the moment Tune started the trial (its actor was up) to its first training step
-- getting the dataset from the object store or the cache, building the model, opening the MLflow run;
null for trials that failed or resumed (their last attempt did not start with the trial); ``pretrain``:
where the trial's CE pretraining came from (computed | hit | resumed | none; null if it reported nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from infnet.search_space import Param, SearchSpace
from infnet.tune.child_runs import ended_status


def trial_status(trial: Any) -> str:
    """completed | stopped | error | interrupted (pending/running/paused when the sweep ended)."""
    if trial.status == "ERROR":
        return "error"
    return ended_status(trial.last_result) if trial.status == "TERMINATED" else "interrupted"


def startup_seconds(trial: Any) -> float | None:
    """Seconds from Tune starting ``trial`` to its first training step (see the module docstring)."""
    r = trial.last_result or {}
    started = trial.run_metadata.start_time
    if r.get("first_step_at") is None or started is None or trial.num_failures or r.get("start_epoch"):
        return None
    return r["first_step_at"] - started


def trial_rows(trials: list[Any], space: SearchSpace, run_ids: Mapping[str, str], errors: Mapping[str, str],
               metric: str) -> list[dict[str, Any]]:
    """One row per ``ray.tune.experiment.Trial`` (sorted by trial id) of a sweep selecting on ``metric`` (its
    key, "f1" | "acc"); see the module docstring."""
    rows = []
    for t in sorted(trials, key=lambda t: t.trial_id):
        r = t.last_result or {}
        completed = bool(r.get("completed"))
        rows.append({
            "trial_id": t.trial_id,
            "status": trial_status(t),
            **{name: t.config.get(name) for name in space.names},
            "dev_metric": r.get("dev_metric"),
            "test_metric": r.get("test_metric") if completed else None,
            "test_f1_at_0.5": r.get("test_f1_at_0.5") if completed else None,
            "metric": metric,
            "epochs": r.get("epoch"),
            "train_seconds": r.get("train_seconds"),
            "wall_seconds": r.get("time_total_s"),
            "finished_at": r.get("timestamp"),
            "failures": int(t.num_failures),
            "start_epoch": r.get("start_epoch"),
            "error": errors.get(t.trial_id),
            "mlflow_run_id": run_ids.get(t.trial_id),
            "node_id": r.get("node_id"),
            "node_ip": r.get("node_ip"),
            "startup_seconds": startup_seconds(t),
            "pretrain": r.get("pretrain"),
        })
    return rows


def _param_type(p: Param) -> pa.DataType:
    if p.type == "int":
        return pa.int64()
    if p.type == "float":
        return pa.float64()
    values = [c for c in p.choices if c is not None]
    if all(isinstance(c, bool) for c in values):
        return pa.bool_()
    if all(isinstance(c, int) and not isinstance(c, bool) for c in values):
        return pa.int64()
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in values):
        return pa.float64()
    return pa.string()


def results_table(rows: list[dict[str, Any]], space: SearchSpace) -> pa.Table:
    """The rows as an Arrow table with a fixed schema (parameter columns typed by their distribution)."""
    fields = [pa.field("trial_id", pa.string()), pa.field("status", pa.string())]
    fields += [pa.field(p.name, _param_type(p)) for p in space.params]
    fields += [pa.field(k, pa.float64()) for k in ("dev_metric", "test_metric", "test_f1_at_0.5")] + [pa.field("metric", pa.string())]
    fields += [pa.field("epochs", pa.int64()), pa.field("train_seconds", pa.float64()), pa.field("wall_seconds", pa.float64()),
               pa.field("finished_at", pa.float64()), pa.field("failures", pa.int64()), pa.field("start_epoch", pa.int64()),
               pa.field("error", pa.string()), pa.field("mlflow_run_id", pa.string()),
               pa.field("node_id", pa.string()), pa.field("node_ip", pa.string()), pa.field("startup_seconds", pa.float64()),
               pa.field("pretrain", pa.string())]
    schema = pa.schema(fields)
    strings = {f.name for f in fields if f.type == pa.string() and f.name in space.names}
    cleaned = [{k: (str(v) if k in strings and v is not None else v) for k, v in row.items()} for row in rows]
    return pa.Table.from_pylist(cleaned, schema=schema)


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed trial with the highest dev metric (model selection on dev only); if no trial
    completed, the highest partial dev metric; None if no trial reported anything."""
    for pool in ([r for r in rows if r["status"] == "completed"], rows):
        scored = [r for r in pool if r["dev_metric"] is not None]
        if scored:
            return max(scored, key=lambda r: r["dev_metric"])
    return None


__all__ = ["best_row", "results_table", "startup_seconds", "trial_rows", "trial_status"]
