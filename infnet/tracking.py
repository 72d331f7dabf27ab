"""MLflow helpers: one run per training run, params logged once, metrics per epoch, artifacts.

Uses ``mlflow.MlflowClient`` (explicit run ids, no global "active run"), so the same code works in
the CLI process and inside Ray Tune workers. MLflow is imported lazily.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def resolve_uri(uri: str | None, base_dir: str | os.PathLike | None = None) -> str:
    """The tracking URI to use: ``None`` means a SQLite store ``mlflow.db`` in ``base_dir`` (default cwd).

    Relative ``sqlite:///x.db`` and plain paths are made absolute, because Ray Tune changes the
    working directory of trials.
    """
    base = Path(base_dir or os.getcwd()).resolve()
    if uri is None or uri == "":
        return f"sqlite:///{base / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(base / uri.removeprefix('sqlite:///')).resolve()}"
    if "://" not in uri and not uri.startswith("file:"):
        return (base / uri).resolve().as_uri()
    return uri


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"a.b.c": "value"}`` with values as strings (MLflow params)."""
    out: dict[str, str] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v)
    return out


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///<path>`` store; None for other stores (and in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``<database>.lock`` beside a SQLite store's file, so that one
    process at a time creates its schema and its experiments (processes that start together share a
    file-based store; a tracking server serialises its own clients). No-op for other stores."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:  # closing the file releases the lock
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextmanager
def quiet_store_setup() -> Iterator[None]:
    """Without MLflow's INFO lines about creating database tables (its warnings still show)."""
    logger = logging.getLogger("mlflow.store.db.utils")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


#: MLflow 3's UI opens an experiment without this tag as a GenAI "Overview" of traces; with it, on its runs.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


#: Experiment tags holding a runs-table view the UI opens with ``?viewStateShareKey=<key>`` (MLflow's "share view").
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."


def runs_url(ui: str, experiment_id: str, view: str | None = None) -> str:
    """The MLflow UI page (``ui``: the UI's base URL) listing the runs of experiment ``experiment_id``,
    in the shared view ``view`` (see :func:`share_runs_view`) if given."""
    query = f"?viewStateShareKey={view}" if view else ""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs{query}"


def share_runs_view(uri: str, experiment_id: str, key: str, search_filter: str, metrics: list[str], expand_run: str) -> str:
    """Store a runs-table view in the experiment (MLflow's shared view state): runs matching
    ``search_filter``, sorted by ``metrics[0]`` (best first), ``metrics`` as columns, ``expand_run``'s
    child runs shown under it. Returns the view's key (``key`` made URL-safe)."""
    import mlflow

    key = re.sub(r"[^A-Za-z0-9_-]", "-", key)
    columns = [f"metrics.`{m}`" for m in metrics]
    state = {"searchFilter": search_filter, "orderByKey": columns[0], "orderByAsc": False, "startTime": "ALL",
             "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs", "selectedColumns": columns,
             "runsExpanded": {expand_run: True}, "runsPinned": [], "runsHidden": [], "runListHidden": False, "viewMaximized": False}
    mlflow.MlflowClient(uri).set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + key, json.dumps(state))
    return key


def ensure_experiment(uri: str, name: str) -> str:
    """Create (or find) experiment ``name`` in the store at ``uri``, tagged as a model-training
    experiment (``EXPERIMENT_KIND``, also added to an existing experiment without it); returns its id.

    A fresh SQLite store creates its schema on first contact; that and the experiment's creation
    happen under :func:`store_lock`, so processes started together on a new store do not race
    (MLflow caches the store object per URI: this process's later clients of ``uri`` reuse it).
    A new experiment in a SQLite store keeps its artifacts in ``mlruns/`` beside the database file
    (MLflow's default is ``./mlruns`` of whichever process creates the experiment).
    """
    import mlflow

    with store_lock(uri), quiet_store_setup():
        client = mlflow.MlflowClient(uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            for key, value in EXPERIMENT_KIND.items():
                if key not in exp.tags:
                    client.set_experiment_tag(exp.experiment_id, key, value)
            return exp.experiment_id
        db = sqlite_path(uri)
        location = (db.parent / "mlruns").as_uri() if db is not None and db.is_absolute() else None
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


class RunLogger:
    """A single MLflow run (in experiment ``experiment_id``): ``log_metrics`` per step, ``log_dict``/``log_file``
    artifacts, ``end``."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> None:
        import mlflow

        exp_id = ensure_experiment(uri, experiment) if run_id is None else None  # a new store's schema: under its lock
        self.client = mlflow.MlflowClient(uri)  # MLflow builds (and caches) the store here
        self.uri = uri
        if run_id is not None:
            self.run_id = run_id
            self.experiment_id: str = self.client.get_run(run_id).info.experiment_id
            self.client.update_run(run_id, status="RUNNING")
            return
        run = self.client.create_run(exp_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        if params:
            self.log_params(params)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log a flat or nested mapping of params once (batched)."""
        from mlflow.entities import Param

        flat = flatten(params)
        items = [Param(k, v[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite scalar metrics at ``step`` (batched); non-finite values are skipped."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if math.isfinite(float(v))]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i : i + 500])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_dict(self, obj: Any, name: str) -> None:
        """Store ``obj`` as a JSON or YAML artifact called ``name``."""
        self.client.log_dict(self.run_id, obj, name)

    def log_file(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_torch(self, obj: Any, name: str) -> None:
        """Save ``obj`` with ``torch.save`` and store it as artifact ``name``."""
        import torch

        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / name
            torch.save(obj, path)
            self.log_file(path)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run with ``FINISHED`` | ``FAILED`` | ``KILLED``."""
        self.client.set_terminated(self.run_id, status)
