"""Quote- and escape-aware splitting of ARFF text (names, nominal declarations, data rows).

ARFF words are either bare (a run without whitespace, commas or braces) or quoted with ``'`` or ``"``.
Backslash escapes (``\\'``, ``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r``, ``\\%``) are resolved in both
forms, so the bare delicious name ``TAG_m\\'usica`` reads as ``TAG_m'usica``.  MULAN XML label names
go through the same :func:`unescape`, so both sides of the name match agree.
"""

from __future__ import annotations

import re

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_BARE_RE = re.compile(r"(?:\\.|[^\s,{}\\])+")


def unescape(text: str) -> str:
    """Resolve backslash escapes: ``\\n``, ``\\r``, ``\\t`` become control characters, ``\\x`` becomes ``x``."""
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def read_word(text: str, pos: int = 0) -> tuple[str, int]:
    """Read one word starting at ``text[pos]`` (leading whitespace skipped).

    Returns the unquoted, unescaped word and the position just after it.
    Raises ValueError on an unterminated quote or when no word starts there.
    """
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos < len(text) and text[pos] in "'\"":
        quote, end = text[pos], pos + 1
        while end < len(text) and text[end] != quote:
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise ValueError(f"unterminated quote starting at column {pos + 1}")
        return unescape(text[pos + 1 : end]), end + 1
    match = _BARE_RE.match(text, pos)
    if match is None:
        found = repr(text[pos]) if pos < len(text) else "end of line"
        raise ValueError(f"expected a word at column {pos + 1}, found {found}")
    return unescape(match.group()), match.end()


def split_items(text: str) -> list[list[str]]:
    """Split ``text`` on commas outside quotes; each item is its list of whitespace-separated words.

    ``"a, 'b c' d,"`` gives ``[["a"], ["b c", "d"], []]``; an empty text gives ``[[]]``.
    Raises ValueError on an unterminated quote or a stray brace.
    """
    items: list[list[str]] = [[]]
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == ",":
            items.append([])
            pos += 1
        elif char.isspace():
            pos += 1
        else:
            word, pos = read_word(text, pos)
            items[-1].append(word)
    return items
