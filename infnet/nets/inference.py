"""Inference network A_ψ(x): one forward pass from inputs to relaxed multi-label outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from infnet.nets.features import FeatureNet


class InferenceNet(nn.Module):
    """``forward: x (B, D) -> logits (B, L)``; ``A_ψ(x) = probs(x) = sigmoid(logits)`` in ``[0, 1]^L``.

    ``forward`` returns logits so that ``torch.func.functional_call`` gives them directly.

    The hidden layers (``self.features``) and the linear head (``self.head``) are separate so that
    energy methods can reuse a pretrained copy of the hidden layers as their feature network F(x)
    and initialise the energy's local term from the head.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], n_labels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = FeatureNet(in_dim, hidden, dropout)
        self.head = nn.Linear(self.features.out_dim, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D) -> logits (B, L)."""
        return self.head(self.features(x))

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D) -> y (B, L) in [0, 1]."""
        return torch.sigmoid(self(x))
