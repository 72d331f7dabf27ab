"""Word and character vocabularies: id 0 is padding, id 1 the unknown item (see :mod:`infnet.data.seq.types`).

Words: a token's *form* has every digit replaced by ``0`` (so "1996" and "2001" share the id of
"0000", as in Lample et al. 2016) and is lowercased when ``lowercase`` is set.  The vocabulary holds
the forms seen at least ``min_freq`` times in the train split, most frequent first (ties in string
order), then any ``extra`` forms (words with a pretrained vector, see :mod:`infnet.data.seq.embeddings`).
Lookup tries the form, then the lowercased form, then gives ``UNK_ID``; so every id a lookup can
return belongs to a train word (or has a pretrained vector), never to an untrained fallback entry.

Characters: every character of the train tokens (original case, digits kept), most frequent first;
unseen characters map to ``UNK_ID``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from infnet.data.seq.types import UNK_ID

PAD, UNK = "<pad>", "<unk>"  # ids PAD_ID = 0 and UNK_ID = 1
_DIGIT = re.compile(r"\d")


def word_form(token: str, lowercase: bool = False) -> str:
    """The vocabulary form of a word: every digit replaced by 0, lowercased if ``lowercase``."""
    form = _DIGIT.sub("0", token)
    return form.lower() if lowercase else form


def distinct_items(items: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """(distinct items in order of first appearance, position (n,) int64 of each item in that list)."""
    index: dict[str, int] = {}
    positions = np.fromiter((index.setdefault(item, len(index)) for item in items), np.int64, len(items))
    return list(index), positions


@dataclass(frozen=True, eq=False)
class Vocab:
    """Items by id (``items[0]`` is ``<pad>``, ``items[1]`` ``<unk>``) and their train counts (n,) int64.

    ``words=True`` applies the word form and the lowercase fallback on lookup (see the module
    docstring); ``words=False`` (characters) looks items up exactly.
    """

    items: tuple[str, ...]
    counts: np.ndarray
    words: bool = True
    lowercase: bool = False
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.items[:2] != (PAD, UNK) or len(self.counts) != len(self.items):
            raise ValueError("a Vocab starts with <pad>, <unk> and has one count per item")
        index = {item: i for i, item in enumerate(self.items)}
        if len(index) != len(self.items):
            raise ValueError("vocabulary items must be unique")
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        same = (self.items, self.words, self.lowercase) == (other.items, other.words, other.lowercase)
        return same and np.array_equal(self.counts, other.counts)

    def __contains__(self, item: str) -> bool:
        return item in self._index

    def form(self, token: str) -> str:
        """The vocabulary form of a word ``token`` (digits -> 0, lowercased if ``lowercase``); a character as is."""
        return word_form(token, self.lowercase) if self.words else token

    def lookup(self, token: str) -> int:
        """The id of ``token``: its form, else its lowercased form (words only), else ``UNK_ID``."""
        form = self.form(token)
        found = self._index.get(form)
        if found is None and self.words:
            found = self._index.get(form.lower())
        return UNK_ID if found is None else found

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids (n,) int64 of ``tokens`` (n,); each distinct token is looked up once."""
        distinct, positions = distinct_items(tokens)
        return np.fromiter(map(self.lookup, distinct), np.int64, len(distinct))[positions]

    def encode_chars(self, tokens: Sequence[str]) -> np.ndarray:
        """Ids (m,) int64 of the m characters of ``tokens``, token after token (a character vocabulary)."""
        distinct, inverse = np.unique(code_points("".join(tokens)), return_inverse=True)
        return np.fromiter((self.lookup(chr(code)) for code in distinct.tolist()), np.int64, len(distinct))[inverse]

    def to_json(self) -> dict:
        """A JSON-able description that :meth:`from_json` turns back into an equal Vocab."""
        items, counts = list(self.items), self.counts.tolist()
        return {"items": items, "counts": counts, "words": self.words, "lowercase": self.lowercase}

    @classmethod
    def from_json(cls, data: dict) -> Vocab:
        """The Vocab described by :meth:`to_json`."""
        return cls(tuple(data["items"]), np.array(data["counts"], dtype=np.int64), data["words"], data["lowercase"])


def build_word_vocab(
    train_tokens: Iterable[str], min_freq: int = 1, lowercase: bool = False, extra: Iterable[str] = ()
) -> Vocab:
    """The word vocabulary of the train tokens (forms with count >= ``min_freq``) plus ``extra`` forms."""
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    counts: Counter[str] = Counter()
    for token, n in Counter(train_tokens).items():
        counts[word_form(token, lowercase)] += n
    return _from_counts(counts, min_freq, sorted({word_form(token, lowercase) for token in extra}), True, lowercase)


def build_char_vocab(train_tokens: Iterable[str]) -> Vocab:
    """The character vocabulary of the train tokens (every character seen)."""
    token_counts = Counter(train_tokens)
    codes = code_points("".join(token_counts))
    weights = np.repeat(np.fromiter(token_counts.values(), np.int64), list(map(len, token_counts)))
    distinct, inverse = np.unique(codes, return_inverse=True)
    counts = np.bincount(inverse, weights=weights, minlength=len(distinct)).astype(np.int64)
    return _from_counts(Counter(dict(zip(map(chr, distinct.tolist()), counts.tolist()))), 1, [], False, False)


def code_points(text: str) -> np.ndarray:
    """The Unicode code points (len(text),) uint32 of ``text``."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _from_counts(counts: Counter[str], min_freq: int, extra: list[str], words: bool, lowercase: bool) -> Vocab:
    reserved = {PAD, UNK}
    kept = sorted(x for x, n in counts.items() if n >= min_freq and x not in reserved)
    kept.sort(key=counts.__getitem__, reverse=True)  # stable: most frequent first, ties in string order
    taken = reserved.union(kept)
    added = [item for item in extra if item not in taken]
    items = (PAD, UNK, *kept, *added)
    item_counts = np.array([0, 0, *(counts[item] for item in kept), *(counts.get(item, 0) for item in added)], np.int64)
    return Vocab(items, item_counts, words, lowercase)

