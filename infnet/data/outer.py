"""A held-out part of the train split for the outer (θ) objective of implicit training.

``hold_out(data, fraction, seed)`` removes a seeded ``fraction`` of the train examples from ``data.train``
and returns them as a separate split. Every method then trains its inference network ψ on the reduced
train split only; ``method.outer_data=heldout`` takes the implicit method's outer loss on the held-out
split, which ψ never sees. ``ce`` and the frozen-energy control run with the same ``data.outer_fraction``
train on exactly the same reduced split (same seed), so comparisons stay fair. Dev and test are untouched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from infnet.data.errors import DataConfigError


def hold_out(data: Any, fraction: float, seed: int) -> tuple[Any, Any | None]:
    """``(data with the reduced train split, held-out split)``; ``(data, None)`` when ``fraction`` is 0.

    ``data`` is a dataset with a ``train`` split that has ``take(idx)`` (multi-label or tagging).
    The held-out rows are ``round(fraction · N)`` rows drawn by ``numpy.random.default_rng([seed, 104729])``.
    """
    if not fraction:
        return data, None
    n = len(data.train)
    n_out = int(round(fraction * n))
    if not 0 < fraction < 1 or n_out < 1 or n_out >= n:
        raise DataConfigError(
            f"data.outer_fraction={fraction} must be in (0, 1) and leave at least one example on each side "
            f"of the {n} train examples"
        )
    order = np.random.default_rng([seed, 104729]).permutation(n)
    outer, inner = np.sort(order[:n_out]), np.sort(order[n_out:])
    return dataclasses.replace(data, train=data.train.take(inner)), data.train.take(outer)
