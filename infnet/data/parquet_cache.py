"""The Parquet cache core shared by the multi-label and the tagging caches.

A cached dataset is one Parquet file ``<cache>/<kind>/<name>-<key>.parquet`` (kind ``mlc`` or ``seq``): ragged
integer/float arrays as ``large_binary`` cells whose data buffer is exactly the flat array (they reload about
2.5x faster than ``list<int32>`` columns), and everything else as a JSON header in the schema metadata, stored
with its SHA-256 and checked on read together with the cache format and key. Data pages carry CRC checksums;
a file that fails to read or validate is deleted and rebuilt; writes are atomic (:func:`infnet.data.files.atomic_target`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from infnet.data.files import atomic_target

_METADATA_KEY = b"infnet"
_METADATA_DIGEST_KEY = b"infnet_sha256"

log = logging.getLogger(__name__)
T = TypeVar("T")


def dataset_cache_path(cache_dir: Path, name: str, key: str, kind: str = "mlc") -> Path:
    """Where the dataset ``name`` of ``kind`` (``mlc`` | ``seq``) with cache ``key`` (hex) is stored under
    ``cache_dir``."""
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return cache_dir / kind / f"{safe_name}-{key[:24]}.parquet"


def cached_table(path: Path, key: str, build: Callable[[], T], to_table: Callable[[T, str], pa.Table],
                 from_table: Callable[[pa.Table, str], T]) -> T:
    """The object cached at ``path`` under ``key`` (decoded by ``from_table``); else ``build()`` it and
    store ``to_table(obj, key)`` atomically.  Shared by the multi-label and the tagging caches."""
    obj = read_cached_table(path, key, from_table)
    if obj is None:
        obj = build()
        with atomic_target(path) as temporary:
            pq.write_table(to_table(obj, key), temporary, compression="zstd", use_dictionary=False, write_page_checksum=True)
    return obj


def read_cached_table(path: Path, key: str, from_table: Callable[[pa.Table, str], T]) -> T | None:
    """``from_table`` of the Parquet file at ``path``, or None if absent; an unreadable or invalid file
    (failed page checksum, wrong key or format: ``from_table`` raises) is deleted."""
    if not path.is_file():
        return None
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as parquet:
            return from_table(parquet.read(), key)
    except (OSError, ValueError, KeyError, TypeError, IndexError, pa.ArrowException) as exc:
        log.warning("discarding unreadable dataset cache %s (%s); rebuilding it", path, exc)
        path.unlink(missing_ok=True)
        return None


def table_with_header(columns: dict[str, pa.Array], header: dict[str, Any]) -> pa.Table:
    """A table of ``columns`` carrying ``header`` (JSON, with its SHA-256) in its schema metadata."""
    text = json.dumps(header).encode("utf-8")
    return pa.table(columns, metadata={_METADATA_KEY: text, _METADATA_DIGEST_KEY: hashlib.sha256(text).hexdigest()})


def read_header(table: pa.Table, cache_format: str, key: str) -> dict[str, Any]:
    """The header of a table written by :func:`table_with_header`; raises ``ValueError`` if its checksum,
    ``format`` or ``key`` does not match (the caller's cache file is then rebuilt)."""
    text = table.schema.metadata[_METADATA_KEY]
    if hashlib.sha256(text).hexdigest().encode() != table.schema.metadata[_METADATA_DIGEST_KEY]:
        raise ValueError("metadata checksum mismatch")
    header = json.loads(text)
    if header["format"] != cache_format or header["key"] != key:
        raise ValueError("cache format or key does not match")
    return header


def binary_column(arrays: list[np.ndarray], indptr: np.ndarray, dtype: np.dtype) -> pa.Array:
    """A ``large_binary`` column of ``len(indptr) - 1`` cells: cell i holds rows ``indptr[i]:indptr[i+1]`` of the
    concatenated ``arrays`` as little-endian ``dtype`` (its data buffer is exactly the flat array)."""
    flat = np.concatenate(arrays).astype(dtype, copy=False)
    offsets = (indptr * dtype.itemsize).astype(np.int64)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(indptr) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(flat.tobytes())]
    )


def read_binary_column(table: pa.Table, name: str, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(row offsets (N+1,) int64 in elements, flat values) of a large_binary column written by binary_column."""
    column = table.column(name).combine_chunks()
    raw_offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[raw_offsets[0] : raw_offsets[-1]]
    if np.any(raw_offsets % dtype.itemsize):
        raise ValueError(f"column {name!r}: cell sizes are not multiples of {dtype.itemsize} bytes")
    native = data.view(dtype).astype(dtype.newbyteorder("="))  # a writable copy in native byte order
    return (raw_offsets - raw_offsets[0]) // dtype.itemsize, native


__all__ = ["binary_column", "cached_table", "dataset_cache_path", "read_binary_column", "read_cached_table", "read_header",
           "table_with_header"]
