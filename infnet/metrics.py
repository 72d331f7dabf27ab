"""Structured-prediction metrics (vectorised torch).

Multi-label: example-averaged F1 (an example with no gold and no predicted label scores 1), with the
decision threshold tuned on dev.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Thresholds searched on dev: the INFNET grid's low values plus a 0.025 grid up to 0.9.
THRESHOLD_GRID: tuple[float, ...] = (0.0, 0.01, 0.02, 0.03, 0.04) + tuple(round(0.05 + 0.025 * i, 3) for i in range(35))


def example_f1_per_threshold(scores: torch.Tensor, gold: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Example-averaged F1 for every threshold.

    scores (N, L) in [0, 1], gold (N, L) in {0, 1}, thresholds (T,) -> F1 (T,), predicting ``score > t``.
    """
    gold = gold.bool()
    n_gold = gold.sum(-1)
    out = torch.empty(len(thresholds), dtype=torch.float64)
    for i, t in enumerate(thresholds.tolist()):
        pred = scores > t
        tp = (pred & gold).sum(-1)
        denom = pred.sum(-1) + n_gold
        f1 = torch.where(denom == 0, torch.ones_like(tp, dtype=torch.float64), 2.0 * tp.double() / denom.clamp_min(1).double())
        out[i] = f1.mean()
    return out


def example_f1(scores: torch.Tensor, gold: torch.Tensor, threshold: float = 0.5) -> float:
    """Example-averaged F1 of ``scores (N, L) > threshold`` against ``gold (N, L)``; in [0, 1]."""
    return float(example_f1_per_threshold(scores, gold, torch.tensor([threshold]))[0])


def tune_threshold(
    scores: torch.Tensor, gold: torch.Tensor, grid: Sequence[float] = THRESHOLD_GRID
) -> tuple[float, float]:
    """Pick the threshold maximising example-F1 on (dev) ``scores (N, L)`` / ``gold (N, L)``.

    Returns ``(threshold, f1)``; ties go to the threshold closest to 0.5.
    """
    grid_t = torch.tensor(list(grid), dtype=torch.float64)
    f1 = example_f1_per_threshold(scores.double(), gold, grid_t)
    best = f1.max()
    candidates = torch.nonzero(f1 >= best - 1e-12).flatten()
    pick = candidates[torch.argmin((grid_t[candidates] - 0.5).abs())]
    return float(grid_t[pick]), float(f1[pick])


# --- Sequence labelling: entity-span F1 (seqeval's default mode) and token accuracy ----------------

# a tag's prefix is its first character; seqeval's chunking rules tell apart O, B, I, E, S, "." and the rest
_PREFIX_CODES = {prefix: code for code, prefix in enumerate("OBIES.")}
_OTHER = len(_PREFIX_CODES)


def _prefix_set(prefixes: str) -> np.ndarray:
    """Membership table (n_codes,) bool of the prefix characters in ``prefixes``."""
    table = np.zeros(_OTHER + 1, dtype=bool)
    table[[_PREFIX_CODES[p] for p in prefixes]] = True
    return table


_ES, _BI, _BSO, _OD, _BS, _ESO, _EI = map(_prefix_set, ("ES", "BI", "BSO", "O.", "BS", "ESO", "EI"))


def _check_lengths(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted tag sequences differ in number or length")


def _entity_spans(
    sentences: Sequence[Sequence[str]], type_ids: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entities (end (E,), start (E,), type id (E,)) int64 of ``sentences``, as seqeval's ``get_entities`` finds them.

    Like seqeval, the sentences are joined with an ``O`` after each (so no entity crosses a sentence
    end) and positions index that joined sequence; a tag's prefix is its first character and its
    type what follows the first ``-`` (``_`` if nothing does).  ``type_ids`` maps type names to ids
    and is extended with new names.  Entities end at distinct positions.
    """
    flat = [tag for sentence in sentences for tag in (*sentence, "O")] + ["O"]
    index: dict[str, int] = {}
    positions = np.fromiter((index.setdefault(tag, len(index)) for tag in flat), np.int64, len(flat))
    if "" in index:
        raise ValueError("empty tag string")
    prefix = np.array([_PREFIX_CODES.get(tag[0], _OTHER) for tag in index], dtype=np.int64)[positions]
    kind_of = [type_ids.setdefault(tag[1:].split("-", 1)[-1] or "_", len(type_ids)) for tag in index]
    kind = np.array(kind_of, dtype=np.int64)[positions]
    previous = np.concatenate([[_PREFIX_CODES["O"]], prefix[:-1]])
    previous_kind = np.concatenate([[-1], kind[:-1]])  # -1: seqeval's initial type "", equal to no tag's type
    new_kind = previous_kind != kind
    end = _ES[previous] | (_BI[previous] & _BSO[prefix]) | (~_OD[previous] & new_kind)
    start = _BS[prefix] | (_ESO[previous] & _EI[prefix]) | (~_OD[prefix] & new_kind)
    begin = np.maximum.accumulate(np.where(start, np.arange(len(prefix)), 0))  # latest start so far
    last = np.flatnonzero(end) - 1  # an entity found ending at position i covers begin[i - 1] .. i - 1
    return last, begin[last], previous_kind[last + 1]


def span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Micro-averaged entity-span F1 of predicted tag sequences against gold ones, in [0, 1].

    gold, pred: N sentences of tags each (equal lengths).  Identical to
    ``seqeval.metrics.f1_score(gold, pred)`` in its default (non-strict) mode, including its reading
    of improper sequences (an ``I-X`` after ``O`` or after another type starts an entity; IOB1 input
    reads as IOB1) and its 0.0 when there are no gold and no predicted entities.
    """
    _check_lengths(gold, pred)
    type_ids: dict[str, int] = {}
    gold_end, gold_start, gold_kind = _entity_spans(gold, type_ids)
    pred_end, pred_start, pred_kind = _entity_spans(pred, type_ids)
    size = max(gold_end.max(initial=-1), pred_end.max(initial=-1)) + 1
    start_at, kind_at = np.full(size, -1), np.full(size, -1)
    start_at[gold_end], kind_at[gold_end] = gold_start, gold_kind
    tp = int(np.sum((start_at[pred_end] == pred_start) & (kind_at[pred_end] == pred_kind)))
    precision = tp / len(pred_end) if len(pred_end) else 0.0
    recall = tp / len(gold_end) if len(gold_end) else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag, over N sentences of equal lengths (0.0 if none)."""
    _check_lengths(gold, pred)
    flat_gold = np.array([tag for sentence in gold for tag in sentence], dtype=object)
    flat_pred = np.array([tag for sentence in pred for tag in sentence], dtype=object)
    return float(np.mean(flat_gold == flat_pred)) if len(flat_gold) else 0.0
