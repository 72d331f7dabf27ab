"""The Parquet dataset cache: identical reloads, corruption recovery, keys, atomic concurrent writes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import write_generic

from infnet.data import MLCDataset, load_mlc


def load(root: Path, cache_dir: Path, **extra: object) -> MLCDataset:
    return load_mlc({"name": "toy", "root": str(root), "cache_dir": str(cache_dir), **extra})


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "mlc").iterdir())


def assert_same(a: MLCDataset, b: MLCDataset) -> None:
    for x, y in ((a.train, b.train), (a.dev, b.dev), (a.test, b.test)):
        np.testing.assert_array_equal(x.labels, y.labels)
        for field in ("indptr", "indices", "values"):
            assert getattr(x.features, field).dtype == getattr(y.features, field).dtype
            np.testing.assert_array_equal(getattr(x.features, field), getattr(y.features, field))
    assert (a.name, a.feature_names, a.label_names, a.meta) == (b.name, b.feature_names, b.label_names, b.meta)
    assert (a.dev_seed, a.dev_fraction, a.source_sha256) == (b.dev_seed, b.dev_fraction, b.source_sha256)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    write_generic(tmp_path / "src", "toy", sparse=False)
    return tmp_path / "src"


def test_second_load_reads_the_cache(toy: Path, tmp_path: Path) -> None:
    built = load(toy, tmp_path / "c")
    [path] = cache_files(tmp_path / "c")
    assert path.suffix == ".parquet" and path.name.startswith("toy-")
    cached = load(toy, tmp_path / "c")
    assert_same(built, cached)
    assert_same(built, load(toy, tmp_path / "c", cache=False))
    assert cached.train.features.values.flags.writeable and cached.train.labels.flags.writeable


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty", "renamed label"])
def test_damaged_cache_is_detected_and_rebuilt(
    toy: Path, tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    reference = load(toy, tmp_path / "c")
    [path] = cache_files(tmp_path / "c")
    data = path.read_bytes()
    damaged = {
        "truncate": data[: len(data) // 2],
        "garbage": b"PAR1" + bytes(range(256)) * 8,
        "flip": data[:200] + bytes([data[200] ^ 0xFF]) + data[201:],
        "empty": b"",
        "renamed label": data.replace(b'"lab_a"', b'"lab_b"'),
    }[damage]
    assert damaged != data
    path.write_bytes(damaged)
    with caplog.at_level(logging.WARNING, logger="infnet.data.parquet_cache"):
        rebuilt = load(toy, tmp_path / "c")
    assert "discarding unreadable dataset cache" in caplog.text
    assert_same(reference, rebuilt)
    assert path.read_bytes() == data
    assert_same(reference, load(toy, tmp_path / "c"))


def test_cache_key_follows_sources_and_split_params(toy: Path, tmp_path: Path) -> None:
    first = load(toy, tmp_path / "c")
    load(toy, tmp_path / "c", dev_seed=5)
    load(toy, tmp_path / "c", dev_fraction=0.3)
    assert len(cache_files(tmp_path / "c")) == 3
    test_file = toy / "toy-test.arff"
    test_file.write_text(test_file.read_text() + "1,0,1,red,0,1.5,3\n")
    changed = load(toy, tmp_path / "c")
    assert len(cache_files(tmp_path / "c")) == 4
    assert len(changed.test) == len(first.test) + 1 and changed.source_sha256 != first.source_sha256


def test_concurrent_loaders_never_see_partial_files(toy: Path, tmp_path: Path) -> None:
    results: list[MLCDataset] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(load(toy, tmp_path / "c"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 6
    for result in results[1:]:
        assert_same(results[0], result)
    assert [p.name for p in cache_files(tmp_path / "c")] == [cache_files(tmp_path / "c")[0].name]


def test_cache_dir_from_environment(toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFNET_CACHE", str(tmp_path / "env-cache"))
    load_mlc({"name": "toy", "root": str(toy)})
    assert len(cache_files(tmp_path / "env-cache")) == 1
