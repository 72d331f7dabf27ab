"""span_f1 against seqeval's default mode on random tag sequences; token accuracy."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from seqeval.metrics import accuracy_score, f1_score

from infnet.data.seq.schemes import bio_to_iob1, iob1_to_bio
from infnet.metrics import span_f1, token_accuracy

PROPER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
# improper BIO (I- after O or after another type), IOB1-style inputs, other schemes' prefixes and odd tags
ODD = [*PROPER, "I-ORG", "B-ORG", "E-PER", "S-LOC", "B", "I", "O-X", "PER", ".", "B-A-B", "I-", "-X", "E", "S-PER"]


def random_corpus(rng: np.random.Generator, alphabet: list[str], p_outside: float) -> list[list[str]]:
    weights = np.full(len(alphabet), (1 - p_outside) / (len(alphabet) - 1))
    weights[0] = p_outside
    lengths = rng.integers(0, 12, size=rng.integers(1, 8))
    return [list(rng.choice(alphabet, size=n, p=weights)) for n in lengths]


def seqeval_f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns about tags without a B-/I- prefix and 0/0
        return float(f1_score(gold, pred))


@pytest.mark.parametrize(("alphabet", "p_outside"), [(PROPER, 0.5), (PROPER, 0.9), (ODD, 0.3), (ODD, 0.7)])
def test_span_f1_equals_seqeval_on_random_sequences(alphabet: list[str], p_outside: float) -> None:
    rng = np.random.default_rng(len(alphabet) + int(10 * p_outside))
    values = []
    for _ in range(200):
        gold = random_corpus(rng, alphabet, p_outside)
        # predictions: the gold tags with some positions redrawn, so F1 spans (0, 1]
        pred = [[tag if rng.random() < 0.7 else str(rng.choice(alphabet)) for tag in sentence] for sentence in gold]
        for p in (pred, gold):
            ours, theirs = span_f1(gold, p), seqeval_f1(gold, p)
            assert ours == theirs, (gold, p, ours, theirs)
            values.append(ours)
    assert 0 < np.mean(values) < 1 and len(set(values)) > 20  # informative cases, not only 0 or 1


def test_span_f1_reads_iob1_like_seqeval() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        gold = [iob1_to_bio(s) for s in random_corpus(rng, PROPER, 0.5)]  # proper BIO
        pred = [list(rng.choice(PROPER, size=len(s))) for s in gold]
        gold_iob1, pred_iob1 = [bio_to_iob1(s) for s in gold], [bio_to_iob1(s) for s in pred]
        assert span_f1(gold_iob1, pred_iob1) == seqeval_f1(gold_iob1, pred_iob1)
        # a proper BIO sequence and its IOB1 rewriting hold the same entities
        has_entities = any(tag != "O" for sentence in gold for tag in sentence)
        assert span_f1(gold, gold_iob1) == (1.0 if has_entities else 0.0)


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]], 1.0),
        ([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]], 0.0),  # boundary error
        ([["B-PER", "I-PER", "O"]], [["B-LOC", "I-LOC", "O"]], 0.0),  # type error
        ([["O", "I-PER", "I-PER"]], [["O", "B-PER", "I-PER"]], 1.0),  # I- after O starts an entity
        ([["B-PER", "I-LOC"]], [["B-PER", "B-LOC"]], 1.0),  # a type change starts an entity
        ([["B-PER"], ["I-PER"]], [["B-PER"], ["B-PER"]], 1.0),  # no entity crosses a sentence end
        ([["O", "O"]], [["O", "O"]], 0.0),  # no entities at all: seqeval's 0/0 -> 0
    ],
)
def test_span_f1_cases(gold: list[list[str]], pred: list[list[str]], expected: float) -> None:
    assert span_f1(gold, pred) == pytest.approx(expected)
    assert span_f1(gold, pred) == seqeval_f1(gold, pred)


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="differ"):
        span_f1([["O", "B-PER"]], [["O"]])
    with pytest.raises(ValueError, match="differ"):
        token_accuracy([["O"]], [["O"], ["O"]])


def test_token_accuracy_matches_seqeval() -> None:
    rng = np.random.default_rng(3)
    tags = ["NOUN", "VERB", "DET", "ADJ", "PUNCT"]
    for _ in range(50):
        lengths = rng.integers(1, 10, size=rng.integers(1, 6))
        gold = [list(rng.choice(tags, size=n)) for n in lengths]
        pred = [[t if rng.random() < 0.6 else str(rng.choice(tags)) for t in s] for s in gold]
        assert token_accuracy(gold, pred) == pytest.approx(accuracy_score(gold, pred), abs=1e-12)
    assert token_accuracy([["A", "B"], ["C"]], [["A", "X"], ["C"]]) == pytest.approx(2 / 3)
    assert token_accuracy([], []) == 0.0


def test_span_f1_is_fast_on_a_conll_sized_corpus() -> None:
    rng = np.random.default_rng(0)
    gold = [list(rng.choice(PROPER, size=15, p=[0.8, *[0.2 / 6] * 6])) for _ in range(3500)]
    pred = [[t if rng.random() < 0.9 else "O" for t in s] for s in gold]
    start = time.perf_counter()
    ours = span_f1(gold, pred)
    elapsed = time.perf_counter() - start
    assert ours == seqeval_f1(gold, pred)
    assert elapsed < 1.0
