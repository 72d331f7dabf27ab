"""Pretrained word vectors from a GloVe-format text file (none are used unless ``data.embeddings`` is set).

Format: one word per line followed by its ``dim`` numbers, separated by single spaces (gzip allowed).
A word2vec-style first line ``<count> <dim>`` is skipped.  ``dim`` is taken from the first vector
line; a line with fewer numbers is an error naming the file and line, a line with more fields has
a word containing spaces (as in glove.840B).  Only the vectors of wanted words are parsed; the
first occurrence of a word wins.

A vocabulary form (see :mod:`infnet.data.seq.vocab`) takes the vector of the same string, else of its
lowercased string.  When vectors are given, the word vocabulary also holds, for every train, dev
and test token that the train vocabulary maps to ``<unk>`` but that has a vector, the word of that
vector (standard practice: the embedding table then covers the dev/test words the pretrained vectors
know, which stay unknown otherwise).  Rows without a vector
(and ``<unk>``) are drawn from N(0, s^2), s the standard deviation of the found vectors' entries,
with a fixed seed; the ``<pad>`` row is zero.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infnet.data.errors import DataFormatError
from infnet.data.seq.corpus import iter_lines
from infnet.data.seq.types import PAD_ID
from infnet.data.seq.vocab import Vocab

INIT_SEED = 0


@dataclass(frozen=True, eq=False)
class Vectors:
    """The wanted vectors of a file: ``table`` word -> (dim,) float32; ``n_file_words`` lines read."""

    path: str
    dim: int
    table: dict[str, np.ndarray]
    n_file_words: int

    def key(self, form: str) -> str | None:
        """The word whose vector ``form`` takes: ``form`` itself, else its lowercased string, else None."""
        return form if form in self.table else form.lower() if form.lower() in self.table else None

    def get(self, form: str) -> np.ndarray | None:
        """The vector (dim,) of ``form`` (see :meth:`key`), else None."""
        key = self.key(form)
        return None if key is None else self.table[key]


def read_vectors(path: str | Path, wanted: Collection[str]) -> Vectors:
    """Read the vectors of the ``wanted`` words (and of their lowercased strings) from ``path``."""
    wanted = set(wanted) | {word.lower() for word in wanted}
    table: dict[str, np.ndarray] = {}
    dim = first = n_words = 0
    for number, line in enumerate(iter_lines(path), start=1):
        line = line.rstrip()
        n_numbers = line.count(" ")
        if not line or (number == 1 and n_numbers == 1 and line.replace(" ", "").isdecimal()):
            continue
        if not dim:
            if n_numbers < 1:
                raise DataFormatError(path, number, "expected a word followed by the numbers of its vector")
            dim, first = n_numbers, number
        if n_numbers < dim:
            message = f"ragged line: {n_numbers} numbers after the word, expected {dim} like line {first}"
            raise DataFormatError(path, number, message)
        n_words += 1
        cut = line.index(" ") if n_numbers == dim else len(line.rsplit(" ", dim)[0])  # words may hold spaces
        word, numbers = line[:cut], line[cut + 1 :]
        if word in wanted and word not in table:
            try:
                table[word] = np.array(numbers.split(" "), dtype=np.float32)
            except ValueError:
                message = f"the vector of {word!r} holds a value that is not a number"
                raise DataFormatError(path, number, message) from None
    if not dim:
        raise DataFormatError(path, None, "holds no vectors")
    return Vectors(str(path), dim, table, n_words)


def embedding_matrix(vectors: Vectors, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """(matrix (n_words, dim) float32 aligned with ``vocab``, found (n_words,) bool) as the module docstring says."""
    matrix = np.zeros((len(vocab), vectors.dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for i, item in enumerate(vocab.items):
        vector = vectors.get(item) if i != PAD_ID else None
        if vector is not None:
            matrix[i], found[i] = vector, True
    missing = ~found
    missing[PAD_ID] = False
    scale = float(matrix[found].std()) if found.any() else 1.0
    rng = np.random.default_rng(INIT_SEED)
    matrix[missing] = rng.normal(0.0, scale, (int(missing.sum()), vectors.dim))
    return matrix, found


def coverage(vectors: Vectors, found: np.ndarray, word_ids: Mapping[str, np.ndarray]) -> dict:
    """Coverage statistics: vocabulary entries with a vector, and per split (name -> token word ids
    (n,)) the fraction of tokens whose id has one."""
    return {
        "file": vectors.path,
        "dim": vectors.dim,
        "file_words": vectors.n_file_words,
        "vocab_with_vector": int(found.sum()),
        "vocab_size": len(found),
        "token_coverage": {name: float(found[ids].mean()) if len(ids) else 0.0 for name, ids in word_ids.items()},
        "init_missing": f"normal(0, std of found entries), seed {INIT_SEED}",
    }
