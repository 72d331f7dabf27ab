"""Containers shared by the sequence-labelling data, networks and energies.

A batch of B sentences padded to the longest one (T tokens, C characters per token):
``SeqBatch(words (B, T), chars (B, T, C), mask (B, T))``. Id 0 is padding and id 1 the unknown
word / character in every vocabulary. Labels travel beside a batch as one-hot ``y (B, T, K)`` float
with all-zero rows at padding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

PAD_ID = 0
UNK_ID = 1


class SeqBatch(NamedTuple):
    """Model input for B sentences: ``words`` (B, T) int64, ``chars`` (B, T, C) int64, ``mask`` (B, T) bool."""

    words: torch.Tensor
    chars: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> "SeqBatch":
        """The same batch on ``device``."""
        return SeqBatch(self.words.to(device), self.chars.to(device), self.mask.to(device))


class SeqFeatures(NamedTuple):
    """What a sequence energy reads besides y: token features ``h`` (B, T, H) and ``mask`` (B, T) bool."""

    h: torch.Tensor
    mask: torch.Tensor
