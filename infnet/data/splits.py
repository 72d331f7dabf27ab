"""Seeded random splits of example indices."""

from __future__ import annotations

import numpy as np

from infnet.data.errors import DataConfigError


def random_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` at random into (kept (n - m,), held out (m,)), m = round(fraction * n).

    Both index arrays are int64 and sorted ascending; the same (n, fraction, seed) always gives the same split.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataConfigError(f"split fraction must be in [0, 1), got {fraction}")
    held_count = round(fraction * n)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held_count:]), np.sort(order[:held_count])
