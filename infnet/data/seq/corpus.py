"""A tagged corpus as read from one file: flat tokens and tags, sentence offsets, source lines.

Readers (:mod:`infnet.data.seq.conll`, :mod:`infnet.data.seq.conllu`) and the synthetic generator produce a
:class:`Corpus`; :mod:`infnet.data.seq.build` turns corpora into id arrays.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infnet.data.errors import DataFormatError, DataNotFoundError

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 24


@dataclass(frozen=True, eq=False)
class Corpus:
    """N sentences with n tokens in all.

    ``tokens`` and ``tags`` are flat lists (n,), ``offsets`` (N+1,) int64 delimits sentence i as
    ``offsets[i]:offsets[i+1]``, ``lines`` (n,) int64 holds each token's 1-based line in ``path``
    (0 for generated data).
    """

    tokens: list[str]
    tags: list[str]
    offsets: np.ndarray
    lines: np.ndarray
    path: str

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def with_tags(self, tags: list[str]) -> Corpus:
        """The same corpus with flat ``tags`` (n,) replaced."""
        return Corpus(self.tokens, tags, self.offsets, self.lines, self.path)


def iter_lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, streamed in large blocks (gzip-compressed or not, detected
    from its first bytes).

    Line ends (``\\n`` or ``\\r\\n``) are removed; no other character splits lines.  Invalid UTF-8
    or a damaged gzip stream raises :class:`DataFormatError` naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"data file not found: {path}")
    with path.open("rb") as probe:
        opener = gzip.open if probe.read(2) == _GZIP_MAGIC else open
    number, pending = 0, b""
    with opener(path, "rb") as handle:
        while True:
            try:
                block = handle.read(_BLOCK)
            except (OSError, EOFError, zlib.error) as exc:
                raise DataFormatError(path, number + pending.count(b"\n") + 1, f"cannot read the file: {exc}") from exc
            data = pending + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            data, pending = data[:cut].replace(b"\r\n", b"\n"), data[cut:]
            try:
                lines = data.decode("utf-8").split("\n")
            except UnicodeDecodeError as exc:
                line = number + data.count(b"\n", 0, exc.start) + 1
                raise DataFormatError(path, line, f"not valid UTF-8 ({exc.reason})") from exc
            if lines[-1] == "":
                lines.pop()
            number += len(lines)
            yield from lines
            if not block:
                return
