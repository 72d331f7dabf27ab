"""CoNLL column files for NER (CoNLL-2003 IOB1, WNUT-2017 BIO).

One token per line, columns separated by whitespace (spaces or tabs): the token is the first column
and the tag the last; every token line of a file must have the same number of columns (at least 2).
Blank lines, including lines of only whitespace (WNUT-2017's train file separates most sentences
with a lone tab), end a sentence; ``-DOCSTART-`` lines are skipped and also end a sentence.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from infnet.data.errors import DataFormatError
from infnet.data.seq.corpus import Corpus, iter_lines
from infnet.data.seq.schemes import SCHEMES, iob1_to_bio, split_tag

DOCSTART = "-DOCSTART-"
log = logging.getLogger(__name__)


def read_conll(path: str | Path) -> Corpus:
    """Read the CoNLL column file ``path`` into a :class:`Corpus` with the file's own tags.

    Raises :class:`DataFormatError` (file:line) for a line with a different number of columns than
    the first token line or fewer than 2, and for a tag that is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    offsets = [0]
    n_columns = first_line = 0
    for number, line in enumerate(iter_lines(path), start=1):
        fields = line.split()  # kept only as strings: retaining 200k lists would make the GC crawl
        if not fields or fields[0] == DOCSTART:
            if len(tokens) > offsets[-1]:
                offsets.append(len(tokens))
            continue
        if len(fields) != n_columns:
            if n_columns or len(fields) < 2:
                expected = f"{n_columns} like line {first_line}" if n_columns else "at least 2 (token ... tag)"
                raise DataFormatError(path, number, f"found {len(fields)} columns, expected {expected}: {line!r}")
            n_columns, first_line = len(fields), number
        tokens.append(fields[0])
        tags.append(fields[-1])
        lines.append(number)
    if len(tokens) > offsets[-1]:
        offsets.append(len(tokens))
    for tag in set(tags):
        try:
            split_tag(tag)
        except ValueError as exc:
            raise DataFormatError(path, lines[tags.index(tag)], str(exc)) from None
    return Corpus(tokens, tags, np.array(offsets, dtype=np.int64), np.array(lines, dtype=np.int64), str(path))


def to_bio(corpus: Corpus, scheme: str) -> tuple[Corpus, int]:
    """``corpus`` with its ``scheme`` ("iob1" or "bio") tags converted to proper BIO.

    Returns (corpus, n) where n counts the tags that were not already proper BIO starts: for IOB1 the
    entity-initial ``I-`` tags (expected), for BIO the improper ``I-X`` after a non-X tag (read as
    ``B-X``, as seqeval does, and reported in a warning that suggests ``data.scheme=iob1``).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
    bio = iob1_to_bio(corpus.tags, corpus.offsets)
    changed = sum(map(str.__ne__, corpus.tags, bio))
    if scheme == "bio" and changed:
        log.warning(
            "%s: %d I- tags start an entity (not valid BIO); read as B- tags. If the file is IOB1, "
            "set data.scheme=iob1",
            corpus.path,
            changed,
        )
    return corpus.with_tags(bio), changed
