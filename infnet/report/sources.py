"""Where a report's data comes from: a sweep's results table and what the sweep recorded beside it.

A :class:`ResultSet` is one sweep: its results table (one row per trial, see
:mod:`infnet.tune.results`), the searched parameters, and -- when the sweep recorded them -- its search
space, its resolved config and where its MLflow runs are. :func:`load_sources` accepts, per argument:

- a results file (``.../results.parquet``, or any Parquet file with that schema);
- a sweep folder (holding ``results.parquet``), local or a ``pyarrow.fs`` URI (``s3://...``);
- a local folder of sweep folders (every ``results.parquet`` below it, e.g. ``tune_results/``);
- an MLflow parent run id (32 hex digits): its ``results.parquet``, ``search_space.yaml`` and
  ``sweep_config.yaml`` artifacts.

Beside a results file, ``infnet_sweep.json`` (written by the sweep driver) gives the search space,
config, tracking URI and parent run. Without it (a copied Parquet file) the searched parameters are
the columns between ``status`` and ``dev_metric`` (the table's documented column order) and their
distributions are inferred from the values. Tables written before sweeps selected on the task's own
metric (columns ``dev_f1``/``test_f1``, no ``metric``) are read as F1 tables.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from omegaconf import OmegaConf

from infnet.search_space import SearchSpace, parse_search_space
from infnet.sweep_layout import (
    CONFIG_ARTIFACT,
    RESULTS_FILE,
    SEARCH_SPACE_ARTIFACT,
    absolute_storage,
    filesystem,
    join,
    read_state,
)
from infnet.task_metric import BY_KEY, TaskMetric, metric_of
from infnet.tracking import resolve_uri

RUN_ID = re.compile(r"[0-9a-f]{32}")
#: column names of results tables written before the task-neutral metric columns
LEGACY_COLUMNS = {"dev_f1": "dev_metric", "test_f1": "test_metric"}


class SourceError(ValueError):
    """An argument that is neither a results file, a sweep folder nor an MLflow run id."""


@dataclass(frozen=True)
class ResultSet:
    """One sweep's results: ``table`` (a ``pyarrow.Table``, one row per trial), the searched ``params``
    (column names, in search order), the ``space`` and resolved ``config`` if recorded, the MLflow
    ``tracking_uri`` and ``parent_run_id`` if known, and ``location``: the sweep folder (local path or
    URI) the report is written to, None when the results were only found in MLflow."""

    name: str
    table: Any
    params: tuple[str, ...]
    space: SearchSpace | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    location: str | None = None

    def _config(self, *keys: str) -> Any:
        node: Any = self.config
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        return node

    @property
    def method(self) -> str:
        return str(self._config("method", "name") or "unknown")

    @property
    def data(self) -> str:
        return str(self._config("data", "name") or "unknown")

    @property
    def seed(self) -> int | None:
        """The sweep's ``trainer.seed`` (a row's own ``trainer.seed`` wins when the seed is searched)."""
        seed = self._config("trainer", "seed")
        return None if seed is None else int(seed)

    @cached_property
    def metric(self) -> TaskMetric:
        """The metric the sweep selected on: its table's ``metric`` column (F1 for older tables), described as
        its task's metric when the sweep's data config is recorded."""
        keys = [k for k in self.table.column("metric").to_pylist() if k] if "metric" in self.table.column_names else []
        metric = BY_KEY[keys[0] if keys else "f1"]
        data = self._config("data")
        try:
            recorded = metric_of(data) if isinstance(data, Mapping) and data.get("name") else None
        except ValueError:  # a data config this version reads differently (DataConfigError): the table's key will do
            recorded = None
        return recorded if recorded is not None and recorded.key == metric.key else metric

    def rows(self) -> list[dict[str, Any]]:
        return self.table.to_pylist()

    def ranked(self) -> list[dict[str, Any]]:
        """The rows best first, as the sweep selects: completed trials by dev metric, then the others by
        their last dev metric (trials without one last)."""
        def key(row: dict[str, Any]) -> tuple[bool, bool, float]:
            dev = row.get("dev_metric")
            return row["status"] != "completed", dev is None, -(dev or 0.0)

        return sorted(self.rows(), key=key)


def params_from_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """The searched parameters of a results table: the columns between ``status`` and ``dev_metric``."""
    try:
        return tuple(columns[columns.index("status") + 1 : columns.index("dev_metric")])
    except ValueError:
        raise SourceError(f"not an infnet results table (columns: {list(columns)})") from None


def _space(spec: Any, name: str, source: str) -> SearchSpace | None:
    return parse_search_space(spec, name, source) if isinstance(spec, Mapping) else None


def _result_set(table: Any, name: str, space: SearchSpace | None, **recorded: Any) -> ResultSet:
    table = table.rename_columns([LEGACY_COLUMNS.get(c, c) for c in table.column_names])
    params = params_from_columns(table.column_names)
    if space is not None and set(space.names) != set(params):
        space = None  # the table was not written with this space: infer from the values
    return ResultSet(name, table, tuple(space.names) if space else params, space, **recorded)


def from_file(path: str) -> ResultSet:
    """A results file (local path or URI); ``infnet_sweep.json`` in its folder adds what it records."""
    path = absolute_storage(path)
    folder = path.rsplit("/", 1)[0]
    fs, file = filesystem(path)
    table = pq.read_table(file, filesystem=fs)
    state = read_state(folder) or {}
    stored = state.get("search_space") or {}
    space = _space(stored.get("spec"), stored.get("name", "search_space"), stored.get("source", ""))
    return _result_set(table, folder.rsplit("/", 1)[-1], space, config=state.get("config") or {},
                       tracking_uri=state.get("tracking_uri"), parent_run_id=state.get("parent_run_id"), location=folder)


def from_run(run_id: str, tracking_uri: str) -> ResultSet:
    """The sweep whose MLflow parent run is ``run_id`` (its artifacts); ``location`` is the sweep folder
    of tag ``infnet.sweep_path`` when that folder is on this machine."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    names = {a.path for a in client.list_artifacts(run_id)}
    if RESULTS_FILE not in names:
        raise SourceError(f"MLflow run {run_id} has no {RESULTS_FILE} artifact: not a finished infnet sweep")
    with tempfile.TemporaryDirectory() as d:
        table = pq.read_table(client.download_artifacts(run_id, RESULTS_FILE, d))
        loaded = {a: OmegaConf.to_container(OmegaConf.load(client.download_artifacts(run_id, a, d)), resolve=True)
                  for a in (SEARCH_SPACE_ARTIFACT, CONFIG_ARTIFACT) if a in names}
    sweep_path = run.data.tags.get("infnet.sweep_path")
    local = sweep_path if sweep_path and Path(sweep_path, RESULTS_FILE).is_file() else None
    name = run.info.run_name or run_id
    space = _space(loaded.get(SEARCH_SPACE_ARTIFACT), run.data.params.get("search_space", name), f"mlflow run {run_id}")
    return _result_set(table, name, space, config=loaded.get(CONFIG_ARTIFACT) or {}, tracking_uri=tracking_uri,
                       parent_run_id=run_id, location=local)


def expand(arg: str) -> list[str]:
    """The results files an argument names (see the module docstring); [] for an MLflow run id."""
    if "://" in arg:
        return [arg if arg.endswith(".parquet") else join(arg, RESULTS_FILE)]
    path = Path(arg).expanduser()
    if path.is_file():
        return [str(path.resolve())]
    if path.is_dir():
        if (path / RESULTS_FILE).is_file():
            return [str((path / RESULTS_FILE).resolve())]
        found = sorted(str(p.resolve()) for p in path.rglob(RESULTS_FILE))
        if found:
            return found
        raise SourceError(f"{arg}: no {RESULTS_FILE} in this folder or below it")
    if RUN_ID.fullmatch(arg):
        return []
    raise SourceError(f"{arg}: not a results file, a sweep folder or an MLflow run id")


def load_sources(args: Sequence[str], tracking_uri: str | None = None) -> list[ResultSet]:
    """The result sets the arguments name; ``tracking_uri`` overrides the recorded one (and is needed
    for a run id when it is not the default store ``sqlite:///<cwd>/mlflow.db``)."""
    sets: list[ResultSet] = []
    for arg in args:
        files = expand(arg)
        if not files:
            sets.append(from_run(arg, resolve_uri(tracking_uri)))
        for file in files:
            rs = from_file(file)
            sets.append(replace(rs, tracking_uri=resolve_uri(tracking_uri)) if tracking_uri else rs)
    if not sets:
        raise SourceError("no results to report")
    return sets


__all__ = ["ResultSet", "SourceError", "expand", "from_file", "from_run", "load_sources", "params_from_columns"]
