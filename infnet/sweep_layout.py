"""Where a sweep keeps what it writes: the one place that names the sweep folder's files.

A sweep lives in ``<tune.storage_path>/<tune.name>/`` (a local path or a ``pyarrow.fs`` URI such as
``s3://bucket/sweeps/name``)::

    infnet_sweep.json      what the sweep is (config, search space, MLflow parent run): resume reads it
    results.parquet        one row per trial (:mod:`infnet.tune.results`)
    best_config.json       the dev-selected trial's configuration and metrics
    report/report.html     the sweep report (:mod:`infnet.report`), with its PNGs in ``report/figures/``
    <trial id>/ ...        Ray Tune's own trial folders and experiment state

and beside the sweeps, ``<tune.storage_path>/pretrain_cache/`` holds the CE pretrainings the trials share.
The parent MLflow run carries ``results.parquet``, ``best_config.json``, ``search_space.yaml``,
``sweep_config.yaml`` and ``report/`` as artifacts. Both the sweep driver (:mod:`infnet.tune`) and the report
(:mod:`infnet.report`) read these names from here, so neither imports the other for them. Plain names and
path helpers only: this module imports nothing of infnet, and pyarrow only when a file is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_FILE = "infnet_sweep.json"
RESULTS_FILE = "results.parquet"
BEST_FILE = "best_config.json"
REPORT_DIR = "report"  # in the sweep folder, and the parent run's artifact folder of the report
REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
PRETRAIN_CACHE_DIR = "pretrain_cache"  # in the storage path, shared by its sweeps
SEARCH_SPACE_ARTIFACT = "search_space.yaml"
CONFIG_ARTIFACT = "sweep_config.yaml"


def absolute_storage(storage_path: str) -> str:
    """A URI is kept; a local path is made absolute (Ray rejects relative storage paths)."""
    return storage_path if "://" in storage_path else str(Path(storage_path).expanduser().resolve())


def join(base: str, name: str) -> str:
    """``base/name`` for a local path or a URI."""
    return f"{base.rstrip('/')}/{name}"


def filesystem(path: str) -> tuple[Any, str]:
    """(``pyarrow.fs.FileSystem``, path inside it) of a local path or URI."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(path)


def read_state(path: str) -> dict[str, Any] | None:
    """The content of ``<path>/infnet_sweep.json`` (sweep folder ``path``), or None if there is none."""
    import pyarrow.fs

    fs, root = filesystem(path)
    file = join(root, STATE_FILE)
    if fs.get_file_info(file).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(file) as f:
        return json.loads(f.read().decode())


__all__ = ["BEST_FILE", "CONFIG_ARTIFACT", "FIGURES_DIR", "PRETRAIN_CACHE_DIR", "REPORT_DIR", "REPORT_FILE", "RESULTS_FILE",
           "SEARCH_SPACE_ARTIFACT", "STATE_FILE", "absolute_storage", "filesystem", "join", "read_state"]
