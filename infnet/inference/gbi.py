"""Entropic mirror descent on relaxed outputs, in logit space.

Minimises ``objective(y) − τ·H(y)`` over y = link(z), where H is the entropy of the factorised
distribution that y parameterises: Bernoulli per label (y ∈ [0, 1]^L, link = sigmoid; this module's
:func:`mirror_descent`) or categorical per token (y on simplices, link = masked softmax;
:func:`infnet.inference.gbi_simplex.simplex_mirror_descent`). With that entropy as mirror map, the
mirror step in logit space is the same for both,

    z ← z − η (∇_y objective(link(z)) + τ z),

(for the softmax link up to a per-token constant, which the link ignores), so iterates stay in the
interior without projection. For ``objective = E(x, ·)`` with a linear energy the fixed point is
``link(−∇_y E / τ)``, the exact marginals of the smoothed problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GBIResult:
    """y (B, *S) final iterate; objective (B,) at y; first/last mirror-step norm (per example, RMS
    over the batch) for diagnostics."""

    y: torch.Tensor
    objective: torch.Tensor
    grad_norm_first: float
    grad_norm_last: float


def entropic_mirror_descent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    steps: int,
    lr: float,
    entropy: float,
    link: Callable[[torch.Tensor], torch.Tensor],
) -> GBIResult:
    """The shared loop: ``steps`` mirror steps from logits ``z0 (B, *S)`` with y = ``link(z)`` (B, *S).

    ``objective`` maps y to per-example values (B,); it is minimised. Gradients flow only into y here
    (parameters inside ``objective`` are not updated); the returned y is detached.
    """
    z = z0.detach().clone()
    first = last = 0.0  # step norms, read on the first and last step only (no device sync per step)
    with torch.enable_grad():
        for i in range(steps):
            y = link(z).requires_grad_(True)
            (g,) = torch.autograd.grad(objective(y).sum(), y)
            step = g + entropy * z
            if i == 0 or i == steps - 1:
                last = float(step.norm() / max(1, step.shape[0]) ** 0.5)
                first = last if i == 0 else first
            z = z - lr * step
    y = link(z)
    with torch.no_grad():
        value = objective(y)
    return GBIResult(y.detach(), value.detach(), first, last)


def mirror_descent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    steps: int,
    lr: float,
    entropy: float = 1.0,
) -> GBIResult:
    """Run ``steps`` entropic mirror-descent steps on y = σ(z) ∈ [0, 1]^L from logits ``z0 (B, L)``.

    ``objective`` maps y (B, L) to per-example values (B,); it is minimised. Gradients flow only
    into y here (parameters inside ``objective`` are not updated); the returned y is detached.
    """
    return entropic_mirror_descent(objective, z0, steps, lr, entropy, torch.sigmoid)
