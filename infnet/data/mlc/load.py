"""``load_mlc(cfg)``: multi-label classification data, MULAN ARFF/XML datasets (parsed, cached) and a
synthetic default. ``cfg`` keys (a None value means the default):

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
  ``n_labels`` (24, multiple of 4), ``noise`` (0.5), ``seed`` (0); see :mod:`infnet.data.mlc.synthetic`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from infnet.data.errors import DataConfigError
from infnet.data.files import cache_root, fetch
from infnet.data.hashing import sha256_file, sha256_json
from infnet.data.mlc.arff import PARSER_VERSION
from infnet.data.mlc.cache import CACHE_FORMAT, cached_dataset
from infnet.data.mlc.config import DataConfig
from infnet.data.mlc.mulan import load_mulan, mulan_paths
from infnet.data.mlc.presets import MULAN_BASE_URL, PRESETS, MulanSpec, mulan_spec
from infnet.data.mlc.synthetic import make_synthetic_mlc
from infnet.data.mlc.types import MLCDataset
from infnet.data.parquet_cache import dataset_cache_path

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


__all__ = ["load_mlc"]
