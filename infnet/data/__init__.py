"""Multi-label classification data: MULAN ARFF/XML datasets (parsed, cached) and a synthetic default;
sequence-labelling data (CoNLL-2003, WNUT-2017, UD English-EWT, synthetic): see :mod:`infnet.data.seq_load`.

``load_data(cfg)`` loads either, dispatching on ``cfg.task`` ("mlc" | "ner" | "pos"), else on
``cfg.kind`` / ``cfg.name``.  ``load_mlc(cfg)`` is the multi-label entry point; ``cfg`` keys (a None
value means the default):

- ``name`` ("synthetic_mlc"): "synthetic_mlc", a MULAN preset ("bibtex", "delicious", "bookmarks")
  or any MULAN file stem (``<root>/<stem>-train.arff``, ``<root>/<stem>-test.arff``, ``<root>/<stem>.xml``).
- ``kind`` (inferred: "synthetic" for "synthetic_mlc", else "mulan").
- ``root`` (None): directory holding the files, or its parent holding ``<name>/``; None downloads a
  preset from the public MULAN location into the cache and verifies its SHA-256.
- ``dev_fraction`` (0.1), ``dev_seed`` (0): dev split carved from train (MULAN only).
- ``cache_dir`` (None -> ``$INFNET_CACHE`` or ``~/.cache/infnet``), ``cache`` (True): Parquet cache.
- ``url`` (None -> MULAN on GitHub at a fixed commit): base URL; files are ``<url>/<name>/<file>``.
- ``sha256`` (None): file name -> hex checksum, overriding the preset's for downloads.  With ``root``
  checksums are computed (for the cache key and ``meta["files"]``), not verified.
- synthetic only: ``n_train`` (200), ``n_dev`` (500), ``n_test`` (1000), ``n_features`` (128),
  ``n_labels`` (24, multiple of 4), ``noise`` (0.5), ``seed`` (0); see :mod:`infnet.data.synthetic`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from infnet.data.arff import PARSER_VERSION
from infnet.data.cache import CACHE_FORMAT, cache_root, cached_dataset, dataset_cache_path, fetch
from infnet.data.config import DataConfig
from infnet.data.errors import DataConfigError, DataDownloadError, DataError, DataFormatError, DataNotFoundError
from infnet.data.hashing import sha256_file, sha256_json
from infnet.data.mulan import load_mulan, mulan_paths
from infnet.data.presets import MULAN_BASE_URL, PRESETS, MulanSpec, mulan_spec
from infnet.data.seq_config import SEQ_KINDS, SYNTHETIC_SEQ_NAME
from infnet.data.seq_load import load_seq
from infnet.data.seq_presets import SEQ_PRESETS
from infnet.data.seq_types import SeqBatch
from infnet.data.sequence import SeqDataset, SeqSplit
from infnet.data.synthetic import make_synthetic_mlc
from infnet.data.types import MLCDataset, MLCSplit, SparseRows

__all__ = [
    "DataConfigError",
    "DataDownloadError",
    "DataError",
    "DataFormatError",
    "DataNotFoundError",
    "MLCDataset",
    "MLCSplit",
    "SeqBatch",
    "SeqDataset",
    "SeqSplit",
    "SparseRows",
    "load_data",
    "load_mlc",
    "load_seq",
]
SEQ_TASKS = ("ner", "pos")

log = logging.getLogger(__name__)


def load_mlc(cfg: Mapping[str, Any] | None = None) -> MLCDataset:
    """Load the multi-label dataset described by ``cfg`` (keys in the module docstring).

    Returns an MLCDataset whose splits hold features (N, D) as CSR and labels (N, L) uint8.
    """
    config = DataConfig.from_mapping(cfg or {})
    if config.kind == "synthetic":
        return make_synthetic_mlc(**config.synthetic_params())
    spec = mulan_spec(config.name)
    if config.sha256:
        spec = replace(spec, sha256={**spec.sha256, **config.sha256})
    if config.root is None:
        paths = _download(spec, config)
        file_sha256 = {name: spec.sha256[name] for name in paths}
    else:
        paths = mulan_paths(spec, _dataset_dir(Path(config.root).expanduser(), spec))
        file_sha256 = {name: sha256_file(path) for name, path in paths.items()}
        differing = sorted(name for name in spec.sha256 if spec.sha256[name] != file_sha256.get(name))
        if differing:
            log.warning("%s: files %s differ from the known checksums; using them anyway", spec.name, differing)

    def build() -> MLCDataset:
        return load_mulan(spec, paths, config.dev_fraction, config.dev_seed, file_sha256)

    if not config.cache:
        return build()
    key = sha256_json(
        {
            "cache_format": CACHE_FORMAT,
            "parser": PARSER_VERSION,
            "name": spec.name,
            "files": file_sha256,
            "test_fraction": spec.test_fraction,
            "split_seed": spec.split_seed,
            "dev_fraction": config.dev_fraction,
            "dev_seed": config.dev_seed,
        }
    )
    return cached_dataset(dataset_cache_path(cache_root(config.cache_dir), spec.name, key), key, build)


def load_data(cfg: Mapping[str, Any] | None = None) -> MLCDataset | SeqDataset:
    """Load a multi-label (:func:`load_mlc`) or tagging (:func:`load_seq`) dataset described by ``cfg``.

    ``cfg.task`` picks the loader: "mlc" (the key is dropped before :func:`load_mlc` sees the rest),
    "ner" or "pos"; ``cfg.outer_fraction`` is ignored here (see :mod:`infnet.data.outer`).  Without it, a tagging kind (``synthetic_seq``, ``conll``, ``conllu``) or name
    (``synthetic_seq`` or a tagging preset) means tagging and anything else multi-label.
    """
    given = {key: cfg[key] for key in cfg} if cfg else {}
    task = given.pop("task", None)
    if task is None:
        tagging = given.get("kind") in SEQ_KINDS or given.get("name") in (SYNTHETIC_SEQ_NAME, *SEQ_PRESETS)
        task = None if tagging else "mlc"
    if task == "mlc":
        return load_mlc(given)
    if task is not None and task not in SEQ_TASKS:
        raise DataConfigError(f"data.task must be one of {('mlc', *SEQ_TASKS)}, got {task!r}")
    return load_seq({**given, "task": task})


def _dataset_dir(root: Path, spec: MulanSpec) -> Path:
    """``root`` if it holds the dataset's XML file, else ``root/<name>`` if that does."""
    nested = root / spec.name
    return nested if not (root / spec.xml_name).is_file() and (nested / spec.xml_name).is_file() else root


def _download(spec: MulanSpec, config: DataConfig) -> dict[str, Path]:
    """Fetch (or reuse) the verified files of a preset into the cache: file name -> path."""
    if spec.name not in PRESETS:
        raise DataConfigError(
            f"unknown MULAN dataset {spec.name!r} (presets: {sorted(PRESETS)}); "
            f"set data.root=<directory with {', '.join(spec.file_names)}>"
        )
    directory = cache_root(config.cache_dir) / "downloads" / "mulan" / spec.name
    base_url = config.url or MULAN_BASE_URL
    return {name: fetch(spec.file_url(name, base_url), directory / name, spec.sha256[name]) for name in spec.file_names}

