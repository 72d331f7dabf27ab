"""Containers for sequence-labelling data: ragged id arrays that become padded batches on demand.

A split of N sentences with n tokens and m characters in all keeps flat arrays plus offsets;
:meth:`SeqSplit.batch` pads B sentences to the longest one (T tokens) and the longest word (C
characters, optionally capped by ``max_word_len``) into a :class:`SeqBatch` and a one-hot y
(B, T, K) with all-zero rows at padding.  Tag names are BIO (``O``, ``B-X``, ``I-X``) for NER and
UPOS tags for POS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from infnet.data.seq.schemes import bio_to_iob1
from infnet.data.seq.types import SeqBatch
from infnet.data.seq.vocab import Vocab


def ragged_take(
    offsets: np.ndarray, rows: np.ndarray, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Select ``rows`` (B,) of a ragged array delimited by ``offsets`` (R+1,), each cut to ``limit`` items.

    Returns (counts (B,), positions (k,), columns (k,)) int64: the kept item counts per selected row,
    and for each kept item, in row order, its position in the flat array and its index within its row.
    """
    starts = offsets[rows]
    counts = offsets[rows + 1] - starts
    if limit is not None:
        counts = np.minimum(counts, limit)
    ends = np.cumsum(counts)
    columns = np.arange(ends[-1] if len(ends) else 0, dtype=np.int64) - np.repeat(ends - counts, counts)
    return counts, np.repeat(starts, counts) + columns, columns


def counts_to_offsets(counts: np.ndarray) -> np.ndarray:
    """Offsets (R+1,) int64 of a ragged array with row sizes ``counts`` (R,)."""
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class SeqSplit:
    """N sentences as ragged arrays.

    ``offsets`` (N+1,) int64 delimits sentence i's tokens ``offsets[i]:offsets[i+1]`` in ``word_ids``
    (n,) int64, ``tag_ids`` (n,) int64 (indices into ``tag_names``) and ``flat_tokens`` (n,) object
    (the original token strings); ``char_offsets`` (n+1,) int64 delimits token j's characters in
    ``char_ids`` (m,) int64.  ``max_word_len`` (None: no cap) caps C in batches, keeping each word's
    first characters.
    """

    offsets: np.ndarray
    word_ids: np.ndarray
    tag_ids: np.ndarray
    char_offsets: np.ndarray
    char_ids: np.ndarray
    flat_tokens: np.ndarray
    tag_names: tuple[str, ...]
    max_word_len: int | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Sentence lengths (N,) int64."""
        return np.diff(self.offsets)

    @property
    def n_labels(self) -> int:
        return len(self.tag_names)

    @property
    def tokens(self) -> list[list[str]]:
        """The original tokens of every sentence: N lists."""
        return self.per_sentence(self.flat_tokens)

    @property
    def tags(self) -> list[list[str]]:
        """The gold tag names of every sentence (BIO for NER): N lists."""
        return self.per_sentence(np.array(self.tag_names, dtype=object)[self.tag_ids])

    def per_sentence(self, flat: np.ndarray) -> list[list]:
        """Cut a per-token array (n,) into N per-sentence lists."""
        flat = np.asarray(flat)
        return [flat[a:b].tolist() for a, b in zip(self.offsets[:-1].tolist(), self.offsets[1:].tolist())]

    def take(self, idx: np.ndarray) -> SeqSplit:
        """The sentences ``idx`` (M,) as a new split of M sentences."""
        counts, tokens, _ = ragged_take(self.offsets, np.asarray(idx, dtype=np.int64))
        char_counts, chars, _ = ragged_take(self.char_offsets, tokens)
        return replace(
            self,
            offsets=counts_to_offsets(counts),
            word_ids=self.word_ids[tokens],
            tag_ids=self.tag_ids[tokens],
            char_offsets=counts_to_offsets(char_counts),
            char_ids=self.char_ids[chars],
            flat_tokens=self.flat_tokens[tokens],
        )

    def inputs(self, idx: np.ndarray) -> SeqBatch:
        """The padded model input of sentences ``idx`` (B,): words (B, T), chars (B, T, C), mask (B, T)."""
        return self._layout(np.asarray(idx, dtype=np.int64))[0]

    def batch(self, idx: np.ndarray) -> tuple[SeqBatch, torch.Tensor]:
        """Sentences ``idx`` (B,) as (SeqBatch, y (B, T, K) float32 one-hot, all-zero rows at padding)."""
        x, rows, columns, tokens = self._layout(np.asarray(idx, dtype=np.int64))
        y = torch.zeros(*x.mask.shape, self.n_labels, dtype=torch.float32)
        y[torch.from_numpy(rows), torch.from_numpy(columns), torch.from_numpy(self.tag_ids[tokens])] = 1.0
        return x, y

    def _layout(self, idx: np.ndarray) -> tuple[SeqBatch, np.ndarray, np.ndarray, np.ndarray]:
        """(SeqBatch, row (k,), column (k,), token position (k,)) of the k tokens of sentences ``idx`` (B,)."""
        counts, tokens, columns = ragged_take(self.offsets, idx)
        rows = np.repeat(np.arange(len(idx)), counts)
        char_counts, chars, char_columns = ragged_take(self.char_offsets, tokens, self.max_word_len)
        char_tokens = np.repeat(np.arange(len(tokens)), char_counts)
        shape = (len(idx), int(counts.max(initial=0)))
        words = np.zeros(shape, dtype=np.int64)
        words[rows, columns] = self.word_ids[tokens]
        mask = np.zeros(shape, dtype=bool)
        mask[rows, columns] = True
        char_grid = np.zeros((*shape, max(int(char_counts.max(initial=0)), 1)), dtype=np.int64)
        char_grid[rows[char_tokens], columns[char_tokens], char_columns] = self.char_ids[chars]
        x = SeqBatch(torch.from_numpy(words), torch.from_numpy(char_grid), torch.from_numpy(mask))
        return x, rows, columns, tokens

    def map_inputs(
        self, fn: Callable[[SeqBatch], torch.Tensor], device: torch.device | str, batch_size: int = 256
    ) -> torch.Tensor:
        """``fn`` (SeqBatch -> (B, T, ...)) over all sentences without gradients -> (N, T_max, ...) on ``device``.

        Batches group sentences of similar length (longest first); results are zero-padded to the
        longest sentence of the split and returned in the split's order.
        """
        lengths = self.lengths
        order = np.argsort(-lengths, kind="stable")
        out: torch.Tensor | None = None
        with torch.no_grad():
            for start in range(0, len(self), batch_size):
                idx = order[start : start + batch_size]
                result = fn(self.inputs(idx).to(device))
                if out is None:
                    out = result.new_zeros(len(self), int(lengths.max()), *result.shape[2:])
                out[torch.from_numpy(idx).to(result.device), : result.shape[1]] = result
        return out if out is not None else torch.zeros(0, 0, self.n_labels, device=device)

    def decode(self, pred: torch.Tensor | np.ndarray) -> list[list[str]]:
        """Tag names per sentence from scores (N, T, K) (argmax over K) or tag ids (N, T), T >= longest sentence."""
        pred = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
        ids = pred.argmax(-1) if pred.ndim == 3 else pred
        lengths = self.lengths
        if ids.ndim != 2 or ids.shape[0] != len(self) or ids.shape[1] < lengths.max(initial=0):
            raise ValueError(f"predictions of shape {pred.shape} do not cover {len(self)} sentences of this split")
        rows = np.repeat(np.arange(len(self)), lengths)
        columns = np.arange(len(rows)) - np.repeat(self.offsets[:-1], lengths)
        return self.per_sentence(np.array(self.tag_names, dtype=object)[ids[rows, columns]])


@dataclass(frozen=True, eq=False)
class SeqDataset:
    """A tagging dataset with fixed train/dev/test splits that share ``words``, ``chars`` and ``tag_names``.

    ``task`` is "ner" or "pos"; ``scheme`` is the tag scheme of the source files ("iob1" or "bio";
    None for POS), the tags inside are BIO.  ``embeddings`` (n_words, dim) float32 are pretrained
    word vectors aligned with ``words`` (None unless configured; see :mod:`infnet.data.seq.embeddings`).
    ``source_sha256`` identifies the source files (or generator parameters).
    """

    name: str
    task: str
    train: SeqSplit
    dev: SeqSplit
    test: SeqSplit
    words: Vocab
    chars: Vocab
    tag_names: list[str]
    scheme: str | None
    source_sha256: str
    meta: dict = field(default_factory=dict)
    embeddings: torch.Tensor | None = None

    @property
    def n_labels(self) -> int:
        return len(self.tag_names)

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def n_chars(self) -> int:
        return len(self.chars)

    def decode(self, pred: torch.Tensor | np.ndarray, split: SeqSplit) -> list[list[str]]:
        """Tag names (BIO for NER) of ``split``'s sentences from scores (N, T, K) or ids (N, T)."""
        return split.decode(pred)

    def to_source_scheme(self, tags: Sequence[Sequence[str]]) -> list[list[str]]:
        """BIO tag sequences written in the source files' scheme (IOB1 for CoNLL-2003, else unchanged)."""
        return [bio_to_iob1(sentence) if self.scheme == "iob1" else list(sentence) for sentence in tags]

    def write_predictions(self, path: str | Path, split: SeqSplit, pred: Sequence[Sequence[str]]) -> None:
        """Write ``token gold predicted`` lines in the source scheme, a blank line after each sentence
        (the input format of the conlleval script)."""
        gold, pred = self.to_source_scheme(split.tags), self.to_source_scheme(pred)
        with open(path, "w", encoding="utf-8") as out:
            for tokens, gold_tags, pred_tags in zip(split.tokens, gold, pred, strict=True):
                out.writelines(f"{t} {g} {p}\n" for t, g, p in zip(tokens, gold_tags, pred_tags, strict=True))
                out.write("\n")
