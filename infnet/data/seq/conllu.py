"""CoNLL-U files (Universal Dependencies) read for POS tagging with the UPOS column.

Ten tab-separated columns per word line; ``#`` lines are comments and blank lines end a sentence.
Only syntactic words (integer ids, which must run 1, 2, ... in each sentence) are kept: multiword
token ranges (``1-2``) and empty nodes (``8.1``) are skipped.  Tokens may contain spaces.  The file
may be gzip-compressed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from infnet.data.errors import DataFormatError
from infnet.data.seq.corpus import Corpus, iter_lines

N_COLUMNS = 10
FORM, UPOS = 1, 3
_SKIPPED_ID = re.compile(r"[1-9][0-9]*-[1-9][0-9]*|[0-9]+\.[1-9][0-9]*")


def read_conllu(path: str | Path) -> Corpus:
    """Read the CoNLL-U file ``path`` into a :class:`Corpus` of (FORM, UPOS) per syntactic word.

    Raises :class:`DataFormatError` (file:line) for a line without 10 tab-separated columns, a
    malformed or out-of-sequence id, and an empty or unspecified (``_``) FORM or UPOS.
    """
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    offsets = [0]
    for number, line in enumerate(iter_lines(path), start=1):
        if line.startswith("#"):
            continue
        if not line.strip():
            if len(tokens) > offsets[-1]:
                offsets.append(len(tokens))
            continue
        fields = line.split("\t")
        if len(fields) != N_COLUMNS:
            raise DataFormatError(path, number, f"expected {N_COLUMNS} tab-separated columns, found {len(fields)}")
        word_id = fields[0]
        if not word_id.isdecimal():
            if not _SKIPPED_ID.fullmatch(word_id):
                raise DataFormatError(path, number, f"bad word id {word_id!r} (expected 1, 2, ..., a range 1-2 or 1.1)")
            continue
        expected = len(tokens) - offsets[-1] + 1
        if int(word_id) != expected:
            raise DataFormatError(path, number, f"word id {word_id} out of sequence, expected {expected}")
        form, upos = fields[FORM], fields[UPOS]
        if not form or upos in ("", "_"):
            raise DataFormatError(path, number, f"word {word_id} has no FORM or no UPOS tag: {line!r}")
        tokens.append(form)
        tags.append(upos)
        lines.append(number)
    if len(tokens) > offsets[-1]:
        offsets.append(len(tokens))
    return Corpus(tokens, tags, np.array(offsets, dtype=np.int64), np.array(lines, dtype=np.int64), str(path))
