"""Streaming ARFF parser that writes CSR arrays directly (never a dense N x D matrix).

Supported: ``@relation``, ``@attribute`` with ``numeric`` / ``real`` / ``integer`` or nominal
``{a, b, ...}`` types, ``@data`` rows in dense (``v1, v2, ...``) or sparse (``{i v, ...}``, 0-based
attribute indices) form, mixed freely; ``%`` comment lines; keywords in any case; quoted names and
values with backslash escapes (see :mod:`infnet.data.mlc.quoting`).

Values: numeric attributes keep their number; nominal attributes store the index of the value in
the declaration (so ``{0,1}`` stores the value itself).  Entries equal to 0 are dropped, so a dense row
and the equivalent sparse row give identical CSR arrays.  Missing values (``?``) are **not supported**:
they raise :class:`DataFormatError` rather than being silently imputed.  Any malformed or truncated
input raises :class:`DataFormatError` naming the file and the 1-based line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import BinaryIO, NoReturn

import numpy as np

from infnet.data.errors import DataFormatError, DataNotFoundError
from infnet.data.mlc.quoting import read_word, split_items
from infnet.data.mlc.types import SparseRows

PARSER_VERSION = "infnet-arff-1"
NUMERIC_TYPES = frozenset({"numeric", "real", "integer"})
_UNSUPPORTED_TYPES = frozenset({"string", "date", "relational"})
_CHUNK_TOKENS = 1 << 20
_KEYWORD_RE = re.compile(r"@([A-Za-z]+)(?=\s|$)")
_WORD = r"[^\s,'\"\\{}]++"  # possessive quantifiers: no backtracking on long rows
_SPARSE_FAST_RE = re.compile(rf"\s*+(?:{_WORD}\s++{_WORD}\s*+(?:,\s*+{_WORD}\s++{_WORD}\s*+)*+)?")
_NEEDS_LEXER_RE = re.compile(r"['\"\\]")


@dataclass(frozen=True)
class Attribute:
    """One ``@attribute``: ``values`` are the nominal values in declaration order, None if numeric."""

    name: str
    values: tuple[str, ...] | None
    line: int

    @property
    def is_nominal(self) -> bool:
        return self.values is not None


@dataclass(frozen=True)
class ArffData:
    """A parsed ARFF file.

    ``rows``: N rows x D = len(attributes) columns in CSR form; ``row_lines`` (N,) int64 gives the
    1-based line of each row; ``sparse`` is True if any row used the ``{i v, ...}`` form.
    """

    path: Path
    relation: str
    attributes: tuple[Attribute, ...]
    rows: SparseRows
    row_lines: np.ndarray
    sparse: bool


def read_arff(path: str | Path) -> ArffData:
    """Parse the ARFF file at ``path`` into an :class:`ArffData` with N rows x D attributes (CSR)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"ARFF file not found: {path}")
    with path.open("rb") as handle:
        lines = _Lines(handle, path)
        relation, attributes = _read_header(lines)
        builder = _CsrBuilder(attributes, path)
        _read_rows(lines, builder)
    rows, row_lines = builder.finish()
    return ArffData(path, relation, attributes, rows, row_lines, builder.sparse)


class _Lines:
    """Numbered, stripped UTF-8 lines of a binary file; remembers whether the latest ended with a newline."""

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.path = path
        self.number = 0
        self.complete = True
        self._handle = handle

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for raw in self._handle:
            self.number += 1
            self.complete = raw.endswith(b"\n")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(self.path, self.number, f"not valid UTF-8 text ({exc.reason})") from exc
            yield self.number, (text.removeprefix("\ufeff") if self.number == 1 else text).strip()

    def fail(self, message: str, in_row: bool = False) -> NoReturn:
        """Raise a DataFormatError at the current line (noting truncation if a row is cut off by EOF)."""
        prefix = "file ends inside a row: " if in_row and not self.complete else ""
        raise DataFormatError(self.path, max(self.number, 1), prefix + message)


def _read_header(lines: _Lines) -> tuple[str, tuple[Attribute, ...]]:
    relation = ""
    attributes: list[Attribute] = []
    seen: dict[str, int] = {}
    for number, text in lines:
        if not text or text.startswith("%"):
            continue
        match = _KEYWORD_RE.match(text)
        keyword = match.group(1).lower() if match else ""
        rest = text[match.end() :] if match else ""
        if keyword == "relation":
            relation = _parse_word(lines, rest)[0]
        elif keyword == "attribute":
            attribute = _parse_attribute(lines, rest, number)
            if attribute.name in seen:
                lines.fail(f"attribute {attribute.name!r} already declared on line {seen[attribute.name]}")
            seen[attribute.name] = number
            attributes.append(attribute)
        elif keyword == "data":
            if not attributes:
                lines.fail("@data before any @attribute")
            return relation, tuple(attributes)
        else:
            lines.fail(f"expected @relation, @attribute or @data, found {text[:40]!r}")
    return lines.fail("file ends without an @data section")


def _parse_word(lines: _Lines, text: str) -> tuple[str, int]:
    try:
        return read_word(text)
    except ValueError as exc:
        lines.fail(str(exc))


def _parse_attribute(lines: _Lines, rest: str, number: int) -> Attribute:
    name, end = _parse_word(lines, rest)
    spec = rest[end:].strip()
    if spec.startswith("{"):
        return Attribute(name, _parse_nominal(lines, name, spec), number)
    kind = spec.split()[0].lower() if spec else ""
    if kind in NUMERIC_TYPES:
        return Attribute(name, None, number)
    if kind in _UNSUPPORTED_TYPES:
        lines.fail(f"attribute {name!r}: type {kind!r} is not supported (only numeric/real/integer and nominal)")
    return lines.fail(f"attribute {name!r}: unknown type {spec!r}")


def _parse_nominal(lines: _Lines, name: str, spec: str) -> tuple[str, ...]:
    if not spec.endswith("}"):
        lines.fail(f"attribute {name!r}: nominal declaration not closed by '}}'")
    if not spec[1:-1].strip():
        lines.fail(f"attribute {name!r}: nominal declaration lists no values")
    try:
        items = split_items(spec[1:-1])
    except ValueError as exc:
        lines.fail(f"attribute {name!r}: {exc}")
    if any(len(item) != 1 for item in items):
        lines.fail(f"attribute {name!r}: bad nominal value list {spec!r}")
    values = tuple(item[0] for item in items)
    if len(set(values)) != len(values):
        lines.fail(f"attribute {name!r}: nominal values repeat in {spec!r}")
    return values


def _read_rows(lines: _Lines, builder: _CsrBuilder) -> None:
    n_attributes = builder.n_attributes
    for number, text in lines:
        if not text or text.startswith("%"):
            continue
        is_sparse = text.startswith("{")
        try:
            words = _sparse_words(text) if is_sparse else _dense_words(text, n_attributes)
        except ValueError as exc:
            lines.fail(str(exc), in_row=True)
        builder.add(number, words, is_sparse)


def _sparse_words(text: str) -> list[str]:
    """``{i v, j w}`` -> ``[i, v, j, w]`` (index and value words alternate)."""
    if not text.endswith("}"):
        raise ValueError("sparse row not closed by '}'")
    body = text[1:-1]
    if _SPARSE_FAST_RE.fullmatch(body):
        return body.replace(",", " ").split()
    items = split_items(body)
    if items == [[]]:
        return []
    for item in items:
        if len(item) != 2:
            raise ValueError(f"sparse entry {' '.join(item)!r} is not '<index> <value>'")
    return [word for item in items for word in item]


def _dense_words(text: str, n_attributes: int) -> list[str]:
    """``v1, v2, ...`` -> ``[v1, v2, ...]``, exactly one value per attribute."""
    if _NEEDS_LEXER_RE.search(text) is None:
        words = [word.strip() for word in text.split(",")]
    else:
        items = split_items(text)
        if any(len(item) > 1 for item in items):
            raise ValueError("a dense value contains unquoted whitespace")
        words = [item[0] if item else "" for item in items]
    if len(words) != n_attributes:
        raise ValueError(f"expected {n_attributes} comma-separated values, found {len(words)}")
    if "" in words:
        raise ValueError(f"empty value in column {words.index('') + 1}")
    return words


class _CsrBuilder:
    """Collects row words and converts them chunk by chunk into CSR pieces with numpy."""

    def __init__(self, attributes: tuple[Attribute, ...], path: Path) -> None:
        self.n_attributes = len(attributes)
        self.sparse = False
        self._attributes = attributes
        self._path = path
        self._dense_columns = list(range(self.n_attributes))
        value_sets: dict[tuple[str, ...], int] = {}
        self._group = np.array(
            [-1 if a.values is None else value_sets.setdefault(a.values, len(value_sets)) for a in attributes],
            dtype=np.int64,
        )
        self._lookups = [{value: code for code, value in enumerate(values)} for values in value_sets]
        self._columns: list[int | str] = []
        self._words: list[str] = []
        self._counts: list[int] = []
        self._lines: list[int] = []
        self._pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._all_lines: list[np.ndarray] = []

    def add(self, number: int, words: list[str], is_sparse: bool) -> None:
        """Append one row: alternating index/value words if sparse, one word per attribute if dense."""
        if is_sparse:
            self.sparse = True
            self._columns.extend(words[0::2])
            self._words.extend(words[1::2])
            self._counts.append(len(words) // 2)
        else:
            self._columns.extend(self._dense_columns)
            self._words.extend(words)
            self._counts.append(len(words))
        self._lines.append(number)
        if len(self._words) >= _CHUNK_TOKENS:
            self._flush()

    def finish(self) -> tuple[SparseRows, np.ndarray]:
        """All rows as CSR (N rows x D attributes) and their line numbers (N,)."""
        self._flush()
        counts = [p[0] for p in self._pieces] or [np.zeros(0, np.int64)]
        indices = [p[1] for p in self._pieces] or [np.zeros(0, np.int32)]
        values = [p[2] for p in self._pieces] or [np.zeros(0, np.float32)]
        indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        rows = SparseRows(indptr, np.concatenate(indices), np.concatenate(values), self.n_attributes)
        row_lines = np.concatenate(self._all_lines) if self._all_lines else np.zeros(0, np.int64)
        return rows, row_lines

    def _flush(self) -> None:
        if not self._counts:
            return
        counts = np.asarray(self._counts, dtype=np.int64)
        lines = np.asarray(self._lines, dtype=np.int64)
        row_starts = np.concatenate([[0], np.cumsum(counts)])

        def fail(position: int, message: str) -> NoReturn:
            row = int(np.searchsorted(row_starts, position, side="right")) - 1
            raise DataFormatError(self._path, int(lines[row]), message)

        columns = self._column_ids(fail)
        values = self._values(columns, fail)
        row_ids = np.repeat(np.arange(len(counts)), counts)
        row_ids, columns, values = self._sorted(row_ids, columns, values, lines)
        keep = values != 0
        row_ids, columns, values = row_ids[keep], columns[keep], values[keep]
        self._pieces.append(
            (np.bincount(row_ids, minlength=len(counts)), columns.astype(np.int32), values.astype(np.float32))
        )
        self._all_lines.append(lines)
        self._columns, self._words, self._counts, self._lines = [], [], [], []

    def _column_ids(self, fail: Callable[[int, str], NoReturn]) -> np.ndarray:
        try:
            columns = np.array(self._columns, dtype=np.int64)
        except (ValueError, OverflowError):
            position = next(i for i, word in enumerate(self._columns) if not _is_int(word))
            fail(position, f"attribute index {self._columns[position]!r} is not an integer")
        bad = np.flatnonzero((columns < 0) | (columns >= self.n_attributes))
        if bad.size:
            fail(
                int(bad[0]),
                f"unknown attribute index {columns[bad[0]]}: the header declares {self.n_attributes} "
                f"attributes (0-based indices 0..{self.n_attributes - 1})",
            )
        return columns

    def _values(self, columns: np.ndarray, fail: Callable[[int, str], NoReturn]) -> np.ndarray:
        words = np.array(self._words, dtype=object)
        values = np.empty(len(words), dtype=np.float64)
        group = self._group[columns]
        numeric = np.flatnonzero(group < 0)
        if numeric.size:
            values[numeric] = self._numbers(words[numeric], numeric, columns, fail)
        present = np.bincount(group[group >= 0], minlength=len(self._lookups))
        for gid in np.flatnonzero(present):
            where = np.flatnonzero(group == gid)
            codes = np.fromiter(map(self._lookups[gid].get, words[where], repeat(-1)), np.int64, len(where))
            bad = np.flatnonzero(codes < 0)
            if bad.size:
                position = int(where[bad[0]])
                fail(position, self._bad_value_message(words[position], columns[position]))
            values[where] = codes
        return values

    def _numbers(
        self, words: np.ndarray, where: np.ndarray, columns: np.ndarray, fail: Callable[[int, str], NoReturn]
    ) -> np.ndarray:
        try:
            numbers = words.astype(np.float64)
        except ValueError:
            k = next(i for i, word in enumerate(words) if not _is_float(word))
            fail(int(where[k]), self._bad_value_message(words[k], columns[where[k]]))
        bad = np.flatnonzero(~np.isfinite(numbers))
        if bad.size:
            k = int(bad[0])
            fail(int(where[k]), self._bad_value_message(words[k], columns[where[k]]))
        return numbers

    def _bad_value_message(self, word: str, column: int) -> str:
        attribute = self._attributes[int(column)]
        if word == "?":
            return f"missing value '?' for attribute {attribute.name!r} is not supported; impute it first"
        if attribute.values is None:
            return f"value {word!r} of numeric attribute {attribute.name!r} is not a finite number"
        declared = "{" + ",".join(attribute.values) + "}"
        return f"value {word!r} is not one of the declared values {declared} of attribute {attribute.name!r}"

    def _sorted(
        self, row_ids: np.ndarray, columns: np.ndarray, values: np.ndarray, lines: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sort entries by (row, column) if needed; a repeated column within a row is an error."""
        same_row = row_ids[1:] == row_ids[:-1]
        if not np.any(same_row & (columns[1:] <= columns[:-1])):
            return row_ids, columns, values
        order = np.lexsort((columns, row_ids))
        row_ids, columns, values = row_ids[order], columns[order], values[order]
        repeated = np.flatnonzero((row_ids[1:] == row_ids[:-1]) & (columns[1:] == columns[:-1]))
        if repeated.size:
            k = int(repeated[0])
            raise DataFormatError(
                self._path, int(lines[row_ids[k]]), f"attribute index {columns[k]} appears twice in one sparse row"
            )
        return row_ids, columns, values


def _is_int(word: int | str) -> bool:
    try:
        int(word)
    except ValueError:
        return False
    return True


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
