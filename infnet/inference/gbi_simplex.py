"""Gradient-based inference on per-token label simplices (sequence labelling).

y = masked_softmax(z, mask) (B, T, K); minimises ``objective(y) − τ·Σ_t H(y_t)`` by the entropic
mirror step of :func:`infnet.inference.gbi.entropic_mirror_descent` (shared with the multi-label
case), ``z ← z − η (∇_y objective + τ z)``. Its fixed points satisfy, per real token,

    y_t = softmax(−∂objective/∂y_t / τ).

**Mean field, not exact marginals.** For a chain energy E = −Σ_t y_tᵀ s_t − Σ_t y_tᵀ U y_{t+1}, the
relaxed problem min_y E(y) − τ H(y) is the naive mean-field free energy of the CRF p(tags) ∝
exp(−E(one_hot(tags)) / τ): its minimiser is a product of per-token distributions. With unary terms
only it equals the exact CRF marginals softmax(s_t / τ); with pairwise (or high-order) terms it is only
a mean-field approximation, exact to first order in the coupling — the error against the exact
marginals grows as the square of the coupling strength. Use :class:`infnet.nets.crf.LinearChainCRF`
for exact marginals of chain energies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from infnet.inference.gbi import GBIResult, entropic_mirror_descent
from infnet.nets.sequence import masked_softmax


def simplex_mirror_descent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    mask: torch.Tensor,
    steps: int,
    lr: float,
    entropy: float = 1.0,
) -> GBIResult:
    """Run ``steps`` mirror steps from logits ``z0 (B, T, K)``; ``mask (B, T)`` bool.

    ``objective`` maps y (B, T, K) (zero rows at padding) to (B,) and is minimised. Logits at padding
    are zeroed first, so padding contributes nothing to the step norms; the returned y has exactly
    zero rows at padding.
    """
    z0 = z0.masked_fill(~mask.unsqueeze(-1), 0.0)
    return entropic_mirror_descent(objective, z0, steps, lr, entropy, lambda z: masked_softmax(z, mask))
