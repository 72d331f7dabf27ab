"""Entropic mirror descent on relaxed multi-label outputs y ∈ [0, 1]^L.

Minimises ``objective(y) − τ·H(y)`` where H is the Bernoulli entropy. With the entropy as mirror map
the update in logit space is ``z ← z − η (∇_y objective(σ(z)) + τ z)``, so iterates stay inside
(0, 1) without projection. For ``objective = E(x, ·)`` with a linear energy the fixed point is
``σ(−∇_y E / τ)``, the exact marginals of the smoothed problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GBIResult:
    """y (B, L) final iterate; objective (B,) at y; first/last gradient norm for diagnostics."""

    y: torch.Tensor
    objective: torch.Tensor
    grad_norm_first: float
    grad_norm_last: float


def mirror_descent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    steps: int,
    lr: float,
    entropy: float = 1.0,
) -> GBIResult:
    """Run ``steps`` entropic mirror-descent steps from logits ``z0 (B, L)``.

    ``objective`` maps y (B, L) to per-example values (B,); it is minimised. Gradients flow only
    into y here (parameters inside ``objective`` are not updated); the returned y is detached.
    """
    z = z0.detach().clone()
    norms: list[float] = []
    with torch.enable_grad():
        for _ in range(steps):
            y = torch.sigmoid(z).requires_grad_(True)
            (g,) = torch.autograd.grad(objective(y).sum(), y)
            step = g + entropy * z
            norms.append(float(step.norm() / max(1, step.shape[0]) ** 0.5))
            z = z - lr * step
    y = torch.sigmoid(z)
    with torch.no_grad():
        value = objective(y)
    first = norms[0] if norms else 0.0
    last = norms[-1] if norms else 0.0
    return GBIResult(y.detach(), value.detach(), first, last)
