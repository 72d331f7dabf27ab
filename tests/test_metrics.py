"""Example-F1 and threshold tuning against scikit-learn on random inputs."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from infnet.metrics import THRESHOLD_GRID, example_f1, tune_threshold


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.8])
def test_example_f1_matches_sklearn_samples_average(seed: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    n, l = 200, 12
    gold = (rng.random((n, l)) < rng.uniform(0.02, 0.3)).astype(int)
    gold[:10] = 0  # examples with no gold label
    scores = rng.random((n, l)) ** 2
    scores[:5] = 0.0  # ... and no predicted label either: F1 1 by convention
    pred = (scores > threshold).astype(int)
    expected = f1_score(gold, pred, average="samples", zero_division=1.0)
    got = example_f1(torch.tensor(scores), torch.tensor(gold), threshold)
    assert got == pytest.approx(expected, abs=1e-12)


def test_tune_threshold_picks_the_grid_maximum() -> None:
    rng = np.random.default_rng(3)
    gold = (rng.random((300, 20)) < 0.15).astype(int)
    scores = np.clip(gold * 0.3 + rng.random((300, 20)) * 0.6, 0, 1)
    t, f1 = tune_threshold(torch.tensor(scores), torch.tensor(gold))
    by_sklearn = [f1_score(gold, (scores > g).astype(int), average="samples", zero_division=1.0) for g in THRESHOLD_GRID]
    assert f1 == pytest.approx(max(by_sklearn), abs=1e-12)
    assert t in THRESHOLD_GRID
    assert f1_score(gold, (scores > t).astype(int), average="samples", zero_division=1.0) == pytest.approx(f1)
