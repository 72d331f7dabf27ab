"""Losses shared by the methods: task losses, Δ costs, margin hinges, SEAL's NCE ranking, regularisers.

Shapes: multi-label y, ŷ (B, L) in [0, 1]; energies (B,). All losses return a scalar (batch mean).
The margin and Δ pieces are structure-agnostic (any y (B, *S)); the task-specific ones are used through
``infnet.tasks``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn


def bce_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy summed over labels, averaged over the batch: logits, y (B, L) -> scalar."""
    return fn.binary_cross_entropy_with_logits(logits, y, reduction="sum") / logits.shape[0]


def bce_prob_sum(p: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Binary cross-entropy of probabilities p (B, L) against y (B, L), summed over labels, batch mean."""
    p = p.clamp(eps, 1 - eps)
    return -(y * p.log() + (1 - y) * (1 - p).log()).sum() / p.shape[0]


def soft_f1_loss(p: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 − smooth example-F1: p, y (B, L) -> scalar; F1_i = 2 Σ p y / (Σ p + Σ y)."""
    tp = (p * y).sum(-1)
    f1 = (2 * tp + eps) / (p.sum(-1) + y.sum(-1) + eps)
    return 1.0 - f1.mean()


def squared_l2_cost(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Δ(ŷ, y) = Σ (ŷ − y)² over every output part: (B, *S), (B, *S) -> (B,) (zero padding rows add 0)."""
    return ((y_hat - y) ** 2).flatten(1).sum(-1)


def margin_rescaled_hinge(
    energy_pred: torch.Tensor, energy_gold: torch.Tensor, cost: torch.Tensor, clip: bool = True
) -> torch.Tensor:
    """Batch mean of ``[Δ − E(x, ŷ) + E(x, y)]_+`` from (B,) energies and costs -> scalar.

    With ``clip=False`` the un-clipped hinge (Tu et al. 2020's inference-network step) is returned.
    """
    h = cost - energy_pred + energy_gold
    return (h.clamp_min(0) if clip else h).mean()


def bernoulli_entropy(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Mean per-example entropy of relaxed labels p (B, L) -> scalar (nats, summed over labels)."""
    p = p.clamp(eps, 1 - eps)
    return -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1).mean()


def nce_ranking_loss(
    energy_gold: torch.Tensor, energy_samples: torch.Tensor, logq_gold: torch.Tensor, logq_samples: torch.Tensor
) -> torch.Tensor:
    """SEAL's NCE ranking loss for the loss-net: the gold output must rank first among samples.

    energy_gold (B,), energy_samples (B, S), logq_* the proposal's log-probabilities (same shapes).
    Scores are ``−E − log q`` (the NCE correction); loss = CE with target 0 over ``[gold; samples]``.
    """
    scores = torch.cat([(-energy_gold - logq_gold)[:, None], -energy_samples - logq_samples], dim=1)
    return fn.cross_entropy(scores, torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device))


def l2_to(params: list[torch.Tensor], anchor: list[torch.Tensor]) -> torch.Tensor:
    """Σ ||p − a||² over matching parameter lists -> scalar (INFNET's regu_pretrain)."""
    return sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
