"""Structure terms of the multi-label energy that read the relaxed labels y only (lower is better).

- :class:`PairwiseTerm`: ``yᵀ W y`` with W symmetric, zero diagonal, learned (starts at 0). A positive
  W_ij penalises labels i and j together (exclusion), a negative one rewards them (co-occurrence).
  Unlike the label MLP, whose read-out c₂ starts at zero and whose hidden weights C₁ then get no
  hypergradient, every W_ij gets one from the first outer step.
- :class:`PriorTerm`: the *oracle* structure of a generator that knows its label-set prior π over the
  valid sets S: ``−log Σ_s π(s) Π_l y_l^{s_l} (1 − y_l)^{1 − s_l}``, i.e. minus the log-probability of
  the prior under the product distribution y. At a vertex y = s it is −log π(s) (+∞ off the valid
  sets), so the energy ``−yᵀz + PriorTerm`` is minimised at the MAP set of the independent logits z
  under π. It has no parameters (buffers only): a frozen, known structure.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: y is clamped to [EPS, 1 − EPS] before the log in :class:`PriorTerm`
EPS = 1e-6


class PairwiseTerm(nn.Module):
    """``y (B, L) -> (B,) = Σ_{i≠j} ½ (U + Uᵀ)_ij y_i y_j`` with U (L, L) learned, initialised at 0."""

    def __init__(self, n_labels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_labels, n_labels))
        self.register_buffer("off_diagonal", 1.0 - torch.eye(n_labels))

    def matrix(self) -> torch.Tensor:
        """The symmetric, zero-diagonal interaction matrix W (L, L)."""
        return 0.5 * (self.weight + self.weight.T) * self.off_diagonal

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, L) -> (B,) = yᵀ W y."""
        return ((y @ self.matrix()) * y).sum(-1)


class PriorTerm(nn.Module):
    """``y (B, L) -> (B,) = −weight · log Σ_v exp(log π_v + Σ_l [s_vl log y_l + (1 − s_vl) log(1 − y_l)])``
    for valid sets ``sets`` (V, L) in {0, 1} with log-prior ``log_prior`` (V,)."""

    def __init__(self, sets: np.ndarray, log_prior: np.ndarray, weight: float = 1.0) -> None:
        super().__init__()
        if sets.ndim != 2 or log_prior.shape != (len(sets),):
            raise ValueError(f"sets (V, L) and log_prior (V,) expected, got {sets.shape} and {log_prior.shape}")
        self.weight = float(weight)
        self.register_buffer("sets", torch.as_tensor(sets, dtype=torch.float32))
        self.register_buffer("log_prior", torch.as_tensor(log_prior, dtype=torch.float32))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, L) -> (B,)."""
        sets = self.sets.to(y.dtype)
        y = y.clamp(EPS, 1 - EPS)
        log_lik = y.log() @ sets.T + torch.log1p(-y) @ (1 - sets).T  # (B, V)
        return -self.weight * torch.logsumexp(log_lik + self.log_prior.to(y.dtype), dim=-1)
