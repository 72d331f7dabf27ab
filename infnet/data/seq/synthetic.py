"""Synthetic NER-style tagging data with a long-range label rule (the embedded default for tagging).

Each sentence (6-24 tokens) has a hidden *topic*: one of ``n_types`` entity types, uniform.  It
holds 1-4 entities of 1-3 tokens, never adjacent (at least one ``O`` between two entities), tagged
in BIO, and **every entity of a sentence has the topic's type**, however far apart the entities are.

Words: ``O`` tokens come from a background lexicon (Zipf-distributed) and, with probability
``SHARED_AS_O``, from a shared lexicon; an entity token comes from the shared lexicon with
probability ``AMBIGUITY``, else from its type's own lexicon.  Entity words are capitalised, other
words are not; spellings are random, so characters say nothing about the type.  A shared word
alone cannot tell the type, and a word alone cannot tell ``B`` from ``I``; the sentence can: its
type-specific words reveal the topic, and BIO order fixes B/I.

Measured (``tests/test_data_synthetic_seq.py``, defaults, test split, seeds 0-4) with per-token
probabilities p(tag | word) counted on train: independent per-token argmax reaches span F1
0.21-0.27; exact MAP over the sequences that obey the first-order rules (BIO order, no adjacent
entities) 0.60-0.66; exact MAP that also obeys the topic rule 0.78-0.86.  The structured decoder
beats independent decoding by 0.57-0.63 F1 and first-order (linear-chain) decoding by 0.17-0.20.

Splits are drawn from independent random streams, so dev and test do not change with ``n_train``.
"""

from __future__ import annotations

import string

import numpy as np

from infnet.data.errors import DataConfigError
from infnet.data.hashing import sha256_json
from infnet.data.seq.build import SPLITS
from infnet.data.seq.corpus import Corpus
from infnet.data.seq.dataset import counts_to_offsets

GENERATOR_VERSION = "topic-bio-1"
N_BACKGROUND = 400
N_SPECIFIC = 25
N_SHARED = 30
AMBIGUITY = 0.5
SHARED_AS_O = 0.01
MIN_LEN, MAX_LEN = 6, 24
MAX_ENTITIES = 4
ENTITY_LENGTHS = np.array([1, 2, 3])
ENTITY_LENGTH_PROBS = np.array([0.5, 0.3, 0.2])
OUTSIDE, BEGIN, INSIDE = 0, 1, 2


def type_names(n_types: int) -> list[str]:
    """The entity types ``T0``, ``T1``, ... of the generator."""
    return [f"T{k}" for k in range(n_types)]


def synthetic_seq_corpora(
    n_train: int = 2000, n_dev: int = 500, n_test: int = 500, n_types: int = 4, seed: int = 0
) -> tuple[dict[str, Corpus], dict, str]:
    """Generate the splits: (corpora split -> Corpus with BIO tags, meta, source checksum).

    Deterministic given all arguments; each split has its own random stream.
    """
    params = {"n_train": n_train, "n_dev": n_dev, "n_test": n_test, "n_types": n_types, "seed": seed}
    if min(n_train, n_dev, n_test) < 1 or n_types < 2:
        raise DataConfigError(f"invalid synthetic_seq parameters {params}: sizes >= 1 and n_types >= 2")
    lexicon_stream, *split_streams = np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
    background, specific, shared = _lexicon(np.random.default_rng(lexicon_stream), n_types)
    sizes = dict(zip(SPLITS, (n_train, n_dev, n_test)))
    corpora = {
        split: _corpus(np.random.default_rng(stream), sizes[split], n_types, background, specific, shared)
        for split, stream in zip(SPLITS, split_streams)
    }
    meta = {
        "format": "synthetic_seq",
        "generator": GENERATOR_VERSION,
        "params": params,
        "types": type_names(n_types),
        "rule": "all entities of a sentence share one type (the sentence topic)",
        "lexicon": {"background": N_BACKGROUND, "per_type": N_SPECIFIC, "shared": N_SHARED},
        "ambiguity": AMBIGUITY,
        "shared_as_o": SHARED_AS_O,
    }
    return corpora, meta, sha256_json({"generator": GENERATOR_VERSION, **params})


def _lexicon(rng: np.random.Generator, n_types: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique random spellings: background (N_BACKGROUND,), per type (n_types, N_SPECIFIC), shared (N_SHARED,)."""
    n_entity = n_types * N_SPECIFIC + N_SHARED
    words: dict[str, None] = {}
    letters = np.array(list(string.ascii_lowercase))
    while len(words) < N_BACKGROUND + n_entity:
        word = "".join(rng.choice(letters, size=rng.integers(3, 9)))
        words.setdefault(word.capitalize() if len(words) >= N_BACKGROUND else word, None)
    spellings = np.array(list(words), dtype=object)
    entity = spellings[N_BACKGROUND:]
    return spellings[:N_BACKGROUND], entity[: n_types * N_SPECIFIC].reshape(n_types, N_SPECIFIC), entity[-N_SHARED:]


def _skeleton(rng: np.random.Generator, n_types: int) -> tuple[np.ndarray, int]:
    """One sentence's states (T,) in {OUTSIDE, BEGIN, INSIDE} and its topic type."""
    length = int(rng.integers(MIN_LEN, MAX_LEN + 1))
    topic = int(rng.integers(n_types))
    spans = rng.choice(ENTITY_LENGTHS, size=int(rng.integers(1, MAX_ENTITIES + 1)), p=ENTITY_LENGTH_PROBS)
    while spans.sum() + len(spans) - 1 > length:
        spans = spans[:-1]
    free = length - spans.sum() - (len(spans) - 1)
    bars = np.sort(rng.choice(free + len(spans), size=len(spans), replace=False))
    gaps = np.diff(np.concatenate([[-1], bars, [free + len(spans)]])) - 1  # len(spans)+1 gaps summing to free
    states: list[int] = []
    for i, span in enumerate(spans):
        states += [OUTSIDE] * (gaps[i] + (i > 0)) + [BEGIN] + [INSIDE] * (span - 1)
    states += [OUTSIDE] * gaps[-1]
    return np.array(states), topic


def _corpus(
    rng: np.random.Generator, n: int, n_types: int, background: np.ndarray, specific: np.ndarray, shared: np.ndarray
) -> Corpus:
    """n sentences drawn from the generator (see the module docstring)."""
    skeletons = [_skeleton(rng, n_types) for _ in range(n)]
    states = np.concatenate([s for s, _ in skeletons])
    topics = np.repeat([t for _, t in skeletons], [len(s) for s, _ in skeletons])
    zipf = 1.0 / np.arange(1, len(background) + 1)
    outside = states == OUTSIDE
    use_shared = rng.random(len(states)) < np.where(outside, SHARED_AS_O, AMBIGUITY)
    tokens = np.where(
        use_shared,
        shared[rng.integers(len(shared), size=len(states))],
        np.where(
            outside,
            background[rng.choice(len(background), size=len(states), p=zipf / zipf.sum())],
            specific[topics, rng.integers(specific.shape[1], size=len(states))],
        ),
    )
    names = np.array(type_names(n_types), dtype=object)
    prefix = np.array(["O", "B-", "I-"], dtype=object)[states]
    tags = np.where(outside, "O", prefix + names[topics])
    return Corpus(
        tokens=tokens.tolist(),
        tags=tags.tolist(),
        offsets=counts_to_offsets(np.array([len(s) for s, _ in skeletons])),
        lines=np.zeros(len(states), dtype=np.int64),
        path="<synthetic_seq>",
    )
