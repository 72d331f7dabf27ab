"""Assembly of train/dev/test corpora into a :class:`SeqDataset`: vocabularies from train, id arrays.

Tag names: for NER the BIO tags of every entity type found in any split (``O``, then ``B-t``,
``I-t`` per sorted type); for POS every tag found in any split, sorted.  Words and characters
follow :mod:`infnet.data.seq.vocab`; with pretrained vectors see :mod:`infnet.data.seq.embeddings`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from infnet.data.seq.corpus import Corpus
from infnet.data.seq.dataset import SeqDataset, SeqSplit, counts_to_offsets, ragged_take
from infnet.data.seq.embeddings import Vectors, coverage, embedding_matrix
from infnet.data.seq.schemes import ner_tag_names, split_tag
from infnet.data.seq.types import UNK_ID
from infnet.data.seq.vocab import (
    Vocab,
    build_char_vocab,
    build_word_vocab,
    distinct_items,
    word_form,
)

BUILD_VERSION = "infnet-seq-1"
SPLITS = ("train", "dev", "test")
TASKS = ("ner", "pos")


def build_seq_dataset(
    name: str,
    task: str,
    scheme: str | None,
    corpora: Mapping[str, Corpus],
    source_sha256: str,
    meta: Mapping,
    min_freq: int = 1,
    lowercase: bool = False,
    vectors: Vectors | None = None,
) -> SeqDataset:
    """The dataset of ``corpora`` (``train``, ``dev``, ``test``; NER tags already BIO) with vocabularies
    built on train and, if ``vectors`` are given, an embedding matrix (n_words, dim) aligned with them."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    all_tags = {tag for split in SPLITS for tag in set(corpora[split].tags)}
    if task == "ner":
        tag_names = ner_tag_names([split_tag(tag)[1] for tag in all_tags if tag != "O"])
    else:
        tag_names = sorted(all_tags)
    words = build_word_vocab(corpora["train"].tokens, min_freq, lowercase)
    if vectors is not None:
        tokens = {token for split in SPLITS for token in corpora[split].tokens}
        unknown = {word_form(token, lowercase) for token in tokens if words.lookup(token) == UNK_ID}
        with_vector = {vectors.key(form) for form in unknown} - {None}
        words = build_word_vocab(corpora["train"].tokens, min_freq, lowercase, with_vector)
    chars = build_char_vocab(corpora["train"].tokens)
    splits = {split: encode_split(corpora[split], words, chars, tag_names) for split in SPLITS}
    meta = {
        **meta,
        "builder": BUILD_VERSION,
        "sizes": {split: {"sentences": len(s), "tokens": len(s.word_ids)} for split, s in splits.items()},
        "unknown_word_rate": {split: float(np.mean(s.word_ids == UNK_ID)) for split, s in splits.items()},
        "vocab": {"min_freq": min_freq, "lowercase": lowercase, "words": len(words), "chars": len(chars)},
    }
    embeddings = None
    if vectors is not None:
        matrix, found = embedding_matrix(vectors, words)
        meta["embeddings"] = coverage(vectors, found, {split: s.word_ids for split, s in splits.items()})
        embeddings = torch.from_numpy(matrix)
    return SeqDataset(
        name=name,
        task=task,
        train=splits["train"],
        dev=splits["dev"],
        test=splits["test"],
        words=words,
        chars=chars,
        tag_names=tag_names,
        scheme=scheme,
        source_sha256=source_sha256,
        meta=meta,
        embeddings=embeddings,
    )


def encode_split(corpus: Corpus, words: Vocab, chars: Vocab, tag_names: list[str]) -> SeqSplit:
    """The id arrays of ``corpus`` (n tokens): word ids (n,), tag ids (n,), and the characters of each token."""
    distinct, positions = distinct_items(corpus.tokens)
    distinct_ids = words.encode(distinct)
    lengths = np.fromiter(map(len, distinct), np.int64, len(distinct))
    distinct_chars = chars.encode_chars(distinct)
    char_counts, char_positions, _ = ragged_take(counts_to_offsets(lengths), positions)
    tag_index = {tag: i for i, tag in enumerate(tag_names)}
    return SeqSplit(
        offsets=corpus.offsets.astype(np.int64),
        word_ids=distinct_ids[positions],
        tag_ids=np.fromiter(map(tag_index.__getitem__, corpus.tags), np.int64, len(corpus.tags)),
        char_offsets=counts_to_offsets(char_counts),
        char_ids=distinct_chars[char_positions],
        flat_tokens=np.array(corpus.tokens, dtype=object),
        tag_names=tuple(tag_names),
    )
