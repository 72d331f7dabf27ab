"""Feature network F(x): an MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FeatureNet(nn.Module):
    """MLP ``x (B, D) -> h (B, H)`` with ReLU and dropout after every hidden layer.

    ``hidden`` lists the layer widths; ``out_dim`` is ``hidden[-1]`` (or ``in_dim`` when empty).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D) -> features (B, H)."""
        return self.net(x)
