"""Structured-prediction metrics (vectorised torch).

Multi-label: example-averaged F1 (an example with no gold and no predicted label scores 1), with the
decision threshold tuned on dev.
"""

from __future__ import annotations

from collections.abc import Sequence

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
