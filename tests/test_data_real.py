"""Real MULAN bibtex / delicious files from ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import shared_mulan_dir

from infnet.data import MLCDataset, load_mlc
from infnet.data.mlc.arff import read_arff
from infnet.data.mlc.presets import PRESETS
from infnet.data.splits import random_split


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-cache")


def load(name: str, cache_dir: Path, **extra: object) -> MLCDataset:
    return load_mlc({"name": name, "root": str(shared_mulan_dir(name)), "cache_dir": str(cache_dir), **extra})


def cardinality(*label_blocks: np.ndarray) -> float:
    return float(np.concatenate(label_blocks).sum(axis=1).mean())


@pytest.mark.parametrize(
    ("name", "n_train", "n_test", "n_features", "n_labels", "card_train", "card_test"),
    [("bibtex", 4880, 2515, 1836, 159, 2.380, 2.444), ("delicious", 12920, 3185, 500, 983, 19.047, 18.910)],
)
def test_shapes_and_label_cardinality(
    cache_dir: Path,
    name: str,
    n_train: int,
    n_test: int,
    n_features: int,
    n_labels: int,
    card_train: float,
    card_test: float,
) -> None:
    ds = load(name, cache_dir)
    assert len(ds.train) + len(ds.dev) == n_train and len(ds.test) == n_test
    assert len(ds.dev) == round(0.1 * n_train) and ds.dev_fraction == 0.1 and ds.dev_seed == 0
    assert (ds.n_features, ds.n_labels) == (n_features, n_labels)
    assert len(ds.feature_names) == n_features and len(ds.label_names) == n_labels
    assert round(cardinality(ds.train.labels, ds.dev.labels), 3) == card_train
    assert round(cardinality(ds.test.labels), 3) == card_test
    assert ds.meta["files"] == PRESETS[name].sha256
    assert ds.meta["standardization"]["mode"] == "none"  # all features are nominal {0,1}


def test_bibtex_dev_split_matches_train_file_rows(cache_dir: Path) -> None:
    ds = load("bibtex", cache_dir, dev_seed=3)
    full = read_arff(shared_mulan_dir("bibtex") / "bibtex-train.arff").rows
    kept, held = random_split(4880, 0.1, 3)
    assert np.intersect1d(kept, held).size == 0 and np.union1d(kept, held).size == 4880
    for split, rows in ((ds.dev, held), (ds.train, kept[:300])):
        dense = full.dense(rows).numpy()
        np.testing.assert_array_equal(split.features.dense(np.arange(len(rows))).numpy(), dense[:, :1836])
        np.testing.assert_array_equal(split.labels[: len(rows)], dense[:, 1836:])


def test_bibtex_dev_split_is_deterministic_by_seed(cache_dir: Path) -> None:
    first = load("bibtex", cache_dir, cache=False)
    again = load("bibtex", cache_dir, cache=False)
    other = load("bibtex", cache_dir, dev_seed=1, cache=False)
    np.testing.assert_array_equal(first.dev.features.indptr, again.dev.features.indptr)
    np.testing.assert_array_equal(first.dev.labels, again.dev.labels)
    assert not np.array_equal(first.dev.labels, other.dev.labels)


def test_bibtex_cache_reload_is_identical(cache_dir: Path) -> None:
    start = time.perf_counter()
    cold = load("bibtex", cache_dir / "cold")
    first = time.perf_counter() - start
    start = time.perf_counter()
    warm = load("bibtex", cache_dir / "cold")
    cached = time.perf_counter() - start
    print(f"bibtex: first load {first:.3f} s, cached load {cached:.3f} s ({first / cached:.0f}x)")
    for a, b in ((cold.train, warm.train), (cold.dev, warm.dev), (cold.test, warm.test)):
        np.testing.assert_array_equal(a.labels, b.labels)
        for field in ("indptr", "indices", "values"):
            np.testing.assert_array_equal(getattr(a.features, field), getattr(b.features, field))
    assert (cold.meta, cold.label_names, cold.source_sha256) == (warm.meta, warm.label_names, warm.source_sha256)


def test_delicious_escaped_label_is_resolved(cache_dir: Path) -> None:
    ds = load("delicious", cache_dir)
    column = ds.label_names.index("TAG_m'usica")
    assert "TAG_musica" in ds.label_names and column != ds.label_names.index("TAG_musica")
    assert ds.train.labels[:, column].sum() + ds.dev.labels[:, column].sum() > 0
    assert (ds.test.labels.sum(axis=0) == 0).sum() == 1  # README: one label has no test positive
