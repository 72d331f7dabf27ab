"""Per-epoch metrics of a sweep's trials, read back from their MLflow child runs.

Every trial logs its metrics once per epoch (``step`` = epoch) to its child run: the dev metric
(``dev/<key>`` and ``dev/best_<key>``, key "f1" or "acc": :mod:`infnet.task_metric`), training
losses, and for the implicit method the hypergradient solver's diagnostics averaged over the epoch's
outer steps (``train/solver/residual``, ``iterations``, ``fallback``, ``converged``,
``negative_curvature``, ...; see :meth:`infnet.implicit.hypergrad.HypergradInfo.as_metrics`). The
histories are returned as one long table with columns ``trial_id``, ``metric``, ``epoch``, ``value``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infnet.report.sources import ResultSet

#: Metric keys read back by prefix, besides the dev metric's two.
PREFIXES = ("train/loss/", "train/solver/", "train/hypergrad/")
COLUMNS = ["trial_id", "metric", "epoch", "value"]


def load_histories(tracking_uri: str, run_ids: Mapping[str, str], metric: str) -> Any:
    """The per-epoch metrics of the runs ``{trial_id: mlflow_run_id}`` as a ``pandas.DataFrame``
    (columns :data:`COLUMNS`): ``dev/<metric>``, ``dev/best_<metric>`` and the :data:`PREFIXES` ones;
    raises if the tracking store cannot be read."""
    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient(tracking_uri)
    exact = (f"dev/{metric}", f"dev/best_{metric}")
    records = []
    for trial_id, run_id in run_ids.items():
        for key in (k for k in client.get_run(run_id).data.metrics if k in exact or k.startswith(PREFIXES)):
            records += [(trial_id, key, m.step, m.value) for m in client.get_metric_history(run_id, key)]
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    return frame.drop_duplicates(["trial_id", "metric", "epoch"], keep="last").sort_values(COLUMNS[:3], ignore_index=True)


def sweep_history(rs: ResultSet) -> tuple[Any, str | None]:
    """The per-epoch metrics of every trial of ``rs`` with an MLflow run, and a note (None when they
    were read): without a tracking store or runs, or when it cannot be read, the table is empty."""
    import pandas as pd

    empty = pd.DataFrame(columns=COLUMNS)
    run_ids = {r["trial_id"]: r["mlflow_run_id"] for r in rs.rows() if r.get("mlflow_run_id")}
    if not rs.tracking_uri or not run_ids:
        return empty, "no per-epoch history: the results name no MLflow store or runs (pass --tracking-uri)"
    try:
        return load_histories(rs.tracking_uri, run_ids, rs.metric.key), None
    except Exception as exc:  # noqa: BLE001 - the report goes on without curves
        return empty, f"no per-epoch history: MLflow at {rs.tracking_uri} could not be read ({type(exc).__name__}: {exc})"


__all__ = ["COLUMNS", "load_histories", "sweep_history"]
