"""Parquet cache of parsed multi-label datasets (the shared core: :mod:`infnet.data.parquet_cache`).

A file ``<cache>/mlc/<name>-<key>.parquet`` holds one row per example, train then dev then test. Columns:
``indices`` and ``values`` are ``large_binary`` cells with the row's little-endian int32 column ids / float32
values, ``labels`` is ``fixed_size_binary(L)`` with one uint8 per label. Names, split sizes, meta and the key
are the JSON header.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from infnet.data.mlc.types import MLCDataset, MLCSplit, SparseRows
from infnet.data.parquet_cache import (
    binary_column,
    cached_table,
    read_binary_column,
    read_header,
    table_with_header,
)

CACHE_FORMAT = "infnet-mlc-parquet-1"
_INDEX_DTYPE = np.dtype("<i4")
_VALUE_DTYPE = np.dtype("<f4")


def cached_dataset(path: Path, key: str, build: Callable[[], MLCDataset]) -> MLCDataset:
    """The multi-label dataset cached at ``path`` under ``key``; else ``build()`` it and cache it."""
    return cached_table(path, key, build, _to_table, _from_table)


def _to_table(dataset: MLCDataset, key: str) -> pa.Table:
    splits = [dataset.train, dataset.dev, dataset.test]
    counts = np.concatenate([np.diff(split.features.indptr) for split in splits])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    labels = np.concatenate([split.labels for split in splits]).astype(np.uint8)
    n_rows, n_labels = labels.shape
    header = {
        "format": CACHE_FORMAT,
        "key": key,
        "name": dataset.name,
        "split_sizes": [len(split) for split in splits],
        "n_features": dataset.n_features,
        "feature_names": dataset.feature_names,
        "label_names": dataset.label_names,
        "dev_seed": dataset.dev_seed,
        "dev_fraction": dataset.dev_fraction,
        "source_sha256": dataset.source_sha256,
        "meta": dataset.meta,
    }
    columns = {
        "indices": binary_column([s.features.indices for s in splits], indptr, _INDEX_DTYPE),
        "values": binary_column([s.features.values for s in splits], indptr, _VALUE_DTYPE),
        "labels": pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(n_labels), n_rows, [None, pa.py_buffer(labels.tobytes())]
        ),
    }
    return table_with_header(columns, header)


def _from_table(table: pa.Table, key: str) -> MLCDataset:
    header = read_header(table, CACHE_FORMAT, key)
    indptr, indices = read_binary_column(table, "indices", _INDEX_DTYPE)
    value_indptr, values = read_binary_column(table, "values", _VALUE_DTYPE)
    label_column = table.column("labels").combine_chunks()
    n_rows, n_labels, n_features = table.num_rows, len(header["label_names"]), header["n_features"]
    labels = np.frombuffer(label_column.buffers()[1], dtype=np.uint8)
    labels = labels[label_column.offset * n_labels : (label_column.offset + n_rows) * n_labels]
    labels = labels.reshape(n_rows, n_labels).copy()
    sizes = header["split_sizes"]
    if (
        sum(sizes) != n_rows
        or not np.array_equal(indptr, value_indptr)
        or np.any((indices < 0) | (indices >= n_features))
        or labels.max(initial=0) > 1
    ):
        raise ValueError("cached arrays are inconsistent")
    bounds = np.cumsum([0, *sizes])
    splits = [
        MLCSplit(
            SparseRows(
                indptr[a : b + 1] - indptr[a],
                indices[indptr[a] : indptr[b]],
                values[indptr[a] : indptr[b]],
                n_features,
            ),
            labels[a:b],
        )
        for a, b in itertools.pairwise(bounds)
    ]
    return MLCDataset(
        name=header["name"],
        train=splits[0],
        dev=splits[1],
        test=splits[2],
        feature_names=header["feature_names"],
        label_names=header["label_names"],
        dev_seed=header["dev_seed"],
        dev_fraction=header["dev_fraction"],
        source_sha256=header["source_sha256"],
        meta=header["meta"],
    )


__all__ = ["CACHE_FORMAT", "cached_dataset"]
