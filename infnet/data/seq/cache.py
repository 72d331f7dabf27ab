"""Parquet cache of parsed tagging datasets (the shared core: :mod:`infnet.data.parquet_cache`).

A file ``<cache>/seq/<name>-<key>.parquet`` holds one row per sentence, train then dev then test.
Columns: ``words``, ``tags`` and ``chars`` are ``large_binary`` cells of little-endian int32 ids
(their data buffers are the flat arrays of a split); ``text`` cells hold the UTF-8 of the
sentence's tokens, each followed by a newline (tokens come from lines, so they hold none), which
reloads with one ``str.split``.  (Building a string array with ``pa.array`` would import pandas,
a second or more.)  Vocabularies, tag names, split sizes and meta are
JSON in the schema metadata, stored with its SHA-256 as in the MLC cache; data pages carry CRC
checksums.  A file that fails to read or validate is deleted and rebuilt; writes are atomic.
Pretrained embeddings are not cached (they are re-read from their file, see :func:`infnet.data.load_seq`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from infnet.data.parquet_cache import (
    binary_column,
    cached_table,
    dataset_cache_path,
    read_binary_column,
    read_header,
    table_with_header,
)
from infnet.data.seq.dataset import SeqDataset, SeqSplit, counts_to_offsets
from infnet.data.seq.vocab import Vocab

SEQ_CACHE_FORMAT = "infnet-seq-parquet-2"
_ID_DTYPE = np.dtype("<i4")
_BYTE = np.dtype("u1")


def seq_cache_path(cache_dir: Path, name: str, key: str) -> Path:
    """Where the tagging dataset ``name`` with cache ``key`` (hex) is stored under ``cache_dir``."""
    return dataset_cache_path(cache_dir, name, key, "seq")


def cached_seq_dataset(path: Path, key: str, build: Callable[[], SeqDataset]) -> SeqDataset:
    """The dataset cached at ``path`` under ``key``; else ``build()`` it and cache it atomically."""
    return cached_table(path, key, build, _to_table, _from_table)


def _to_table(dataset: SeqDataset, key: str) -> pa.Table:
    splits = [dataset.train, dataset.dev, dataset.test]
    sentence_offsets = counts_to_offsets(np.concatenate([split.lengths for split in splits]))
    char_counts = np.concatenate([np.diff(split.char_offsets[split.offsets]) for split in splits])
    texts = ["".join(f"{token}\n" for token in sentence).encode("utf-8") for s in splits for sentence in s.tokens]
    token_bytes = b"".join(texts)
    if token_bytes.count(b"\n") != sentence_offsets[-1]:
        raise ValueError("tokens must not contain newlines")
    text_offsets = counts_to_offsets(np.fromiter(map(len, texts), np.int64, len(texts)))
    header = {
        "format": SEQ_CACHE_FORMAT,
        "key": key,
        "name": dataset.name,
        "task": dataset.task,
        "scheme": dataset.scheme,
        "split_sizes": [len(split) for split in splits],
        "words": dataset.words.to_json(),
        "chars": dataset.chars.to_json(),
        "tag_names": dataset.tag_names,
        "source_sha256": dataset.source_sha256,
        "meta": dataset.meta,
    }
    columns = {
        "words": binary_column([s.word_ids for s in splits], sentence_offsets, _ID_DTYPE),
        "tags": binary_column([s.tag_ids for s in splits], sentence_offsets, _ID_DTYPE),
        "chars": binary_column([s.char_ids for s in splits], counts_to_offsets(char_counts), _ID_DTYPE),
        "text": binary_column([np.frombuffer(token_bytes, dtype=np.uint8)], text_offsets, _BYTE),
    }
    return table_with_header(columns, header)


def _ids(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    offsets, values = read_binary_column(table, name, _ID_DTYPE)
    return offsets, values.astype(np.int64)


def _from_table(table: pa.Table, key: str) -> SeqDataset:
    header = read_header(table, SEQ_CACHE_FORMAT, key)
    words, chars = Vocab.from_json(header["words"]), Vocab.from_json(header["chars"])
    tag_names = tuple(header["tag_names"])
    offsets, word_ids = _ids(table, "words")
    tag_offsets, tag_ids = _ids(table, "tags")
    sentence_char_offsets, char_ids = _ids(table, "chars")
    token_text = read_binary_column(table, "text", _BYTE)[1].tobytes().decode("utf-8")
    tokens = np.array(token_text.split("\n")[:-1], dtype=object)
    char_offsets = counts_to_offsets(np.fromiter(map(len, tokens), np.int64, len(tokens)))
    sizes = header["split_sizes"]
    if (
        sum(sizes) != table.num_rows
        or not np.array_equal(offsets, tag_offsets)
        or len(tokens) != offsets[-1]
        or not np.array_equal(char_offsets[offsets], sentence_char_offsets)
        or not _in_range(word_ids, len(words))
        or not _in_range(char_ids, len(chars))
        or not _in_range(tag_ids, len(tag_names))
    ):
        raise ValueError("cached arrays are inconsistent")
    splits = []
    for a, b in itertools.pairwise(np.cumsum([0, *sizes])):
        t0, t1 = offsets[a], offsets[b]
        splits.append(
            SeqSplit(
                offsets=offsets[a : b + 1] - t0,
                word_ids=word_ids[t0:t1],
                tag_ids=tag_ids[t0:t1],
                char_offsets=char_offsets[t0 : t1 + 1] - char_offsets[t0],
                char_ids=char_ids[char_offsets[t0] : char_offsets[t1]],
                flat_tokens=tokens[t0:t1],
                tag_names=tag_names,
            )
        )
    return SeqDataset(
        name=header["name"],
        task=header["task"],
        train=splits[0],
        dev=splits[1],
        test=splits[2],
        words=words,
        chars=chars,
        tag_names=list(tag_names),
        scheme=header["scheme"],
        source_sha256=header["source_sha256"],
        meta=header["meta"],
    )


def _in_range(ids: np.ndarray, n: int) -> bool:
    return not ids.size or (ids.min() >= 0 and ids.max() < n)
