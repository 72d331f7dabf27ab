"""The sequence-labelling energy E_θ(x, y) over per-token label simplices; lower is better.

    E(x, y) = −Σ_t y_tᵀ (W h_t + b)                                   unary (local) term
              − [Σ_t y_tᵀ U y_{t+1} + startᵀ y_first + endᵀ y_last]    linear-chain term (``pairwise``)
              + s · E_high(y)                                          high-order label term

with features ``h (B, T, H)`` from a (frozen) feature network and relaxed labels ``y (B, T, K)``.
``y`` is multiplied by the mask before any term reads it and every sum runs over real positions, so
padding never changes the energy whatever y holds there.

High-order terms (Tu, Pang & Gimpel 2020), capacity ``order_hidden`` (and ``order_window``):

* ``"conv"``: ``E_high = Σ_t c₂ᵀ softplus(Conv(y)_t)``, a convolution with ``order_hidden`` filters
  over windows of ``order_window`` neighbouring label vectors centred on t (zeros past the sentence
  ends, so sentence boundaries are visible to the filters);
* ``"lstm"``: a label language model, ``E_high = −Σ_t y_tᵀ (log_softmax(V o_{t−1} + c) + log K)``
  where ``o_{t−1}`` is an LSTM state over ``y_{<t}``; the ``+ log K`` makes it zero for a uniform LM.
  The LSTM is causal and padding follows the real tokens, so padding cannot reach real positions.

Initialisation mirrors :class:`infnet.nets.MLCEnergy` (see its module docstring for why): the chain
(U, start, end) and the high-order read-out (c₂ or V, c) start at zero, so the untrained energy is the
pretrained unary term alone and its minimiser the pretrained prediction; convolution filters start
with unit-norm rows × ``label_init``; a learnable log-scale ``s`` (``global_scale`` initially)
multiplies the high-order term. ``global_scale = 0`` or ``high_order = "none"`` drops that term
(``has_label_term`` is then False); ``pairwise = False`` freezes the chain at zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as fn
from torch import nn

from infnet.data.seq.types import SeqFeatures
from infnet.nets.crf import LinearChainCRF

HIGH_ORDER = ("none", "conv", "lstm")


class SeqEnergy(nn.Module):
    """Energy over ``feats`` (SeqFeatures: h (B, T, H), mask (B, T)) and y (B, T, K) -> (B,)."""

    def __init__(
        self,
        feature_dim: int,
        n_labels: int,
        pairwise: bool = True,
        high_order: str = "conv",
        order_hidden: int = 16,
        order_window: int = 3,
        global_scale: float = 1.0,
        out_init: float = 0.0,
        label_init: float = 1.0,
    ) -> None:
        if high_order not in HIGH_ORDER:
            raise ValueError(f"high_order must be one of {HIGH_ORDER}, got {high_order!r}")
        if global_scale < 0:
            raise ValueError(f"global_scale must be >= 0, got {global_scale}")
        super().__init__()
        self.n_labels = n_labels
        self.local = nn.Linear(feature_dim, n_labels)
        self.pairwise = pairwise
        self.chain = LinearChainCRF(n_labels).requires_grad_(pairwise)
        self.has_label_term = high_order != "none" and global_scale > 0
        self.high_order = high_order if self.has_label_term else "none"
        if self.high_order == "conv":
            self.order_conv = nn.Conv1d(n_labels, order_hidden, order_window)
            self.order_pad = ((order_window - 1) // 2, order_window // 2)  # output t sees y_{t−left..t+right}
            self.order_out = nn.Linear(order_hidden, 1, bias=False)
        elif self.high_order == "lstm":
            self.order_lstm = nn.LSTM(n_labels, order_hidden, batch_first=True)
            self.order_out = nn.Linear(order_hidden, n_labels)
        if self.has_label_term:
            self.log_scale = nn.Parameter(torch.tensor(math.log(global_scale)))
            self.reset_label_term(label_init, out_init)

    def reset_label_term(self, label_init: float, out_init: float = 0.0) -> None:
        """Conv filters: each filter's (K × window) weights ~ unit norm × ``label_init``, zero bias;
        read-out at zero (``out_init = 0``, the default) or ~ N(0, out_init² / width)."""
        if self.high_order == "conv":
            w = self.order_conv.weight
            nn.init.normal_(w)
            with torch.no_grad():
                w.mul_(label_init / w.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None])
            nn.init.zeros_(self.order_conv.bias)
        if out_init > 0:
            nn.init.normal_(self.order_out.weight, std=out_init / math.sqrt(self.order_out.in_features))
        else:
            nn.init.zeros_(self.order_out.weight)
        if self.order_out.bias is not None:
            nn.init.zeros_(self.order_out.bias)

    def init_local_from(self, head: nn.Linear) -> None:
        """Copy a pretrained tagger head (logits = W h + b) so that the unary energy is ``−Σ_t y_tᵀ logits_t``."""
        with torch.no_grad():
            self.local.weight.copy_(head.weight)
            self.local.bias.copy_(head.bias)

    def unary_scores(self, feats: SeqFeatures) -> torch.Tensor:
        """feats -> unary scores W h_t + b (B, T, K), zero at padding."""
        return self.local(feats.h) * feats.mask.unsqueeze(-1)

    def local_energy(self, feats: SeqFeatures, y: torch.Tensor) -> torch.Tensor:
        """feats, y (B, T, K) -> (B,) = −Σ_t y_tᵀ (W h_t + b) over real positions."""
        return -(y * self.unary_scores(feats)).sum((1, 2))

    def global_energy(self, feats: SeqFeatures, y: torch.Tensor) -> torch.Tensor:
        """feats (only its mask is read), y (B, T, K) -> (B,): chain term + s · high-order term."""
        mask = feats.mask
        y = y * mask.unsqueeze(-1)
        energy = -self.chain.pairwise_score(y, mask) if self.pairwise else y.new_zeros(y.shape[0])
        if self.high_order == "conv":
            act = fn.softplus(self.order_conv(fn.pad(y.transpose(1, 2), self.order_pad))).transpose(1, 2)  # (B, T, hidden)
            energy = energy + self.log_scale.exp() * (self.order_out(act).squeeze(-1) * mask).sum(1)
        elif self.high_order == "lstm":
            prev = torch.cat([y.new_zeros(y.shape[0], 1, self.n_labels), y[:, :-1]], 1)  # y_{t−1}, zero at t = 0
            log_p = torch.log_softmax(self.order_out(self.order_lstm(prev)[0]), -1) + math.log(self.n_labels)
            energy = energy - self.log_scale.exp() * (y * log_p).sum((1, 2))
        return energy

    def forward(self, feats: SeqFeatures, y: torch.Tensor) -> torch.Tensor:
        """feats (h (B, T, H), mask (B, T)), y (B, T, K) -> energy (B,)."""
        return self.local_energy(feats, y) + self.global_energy(feats, y)

    def chain_scores(self, feats: SeqFeatures) -> tuple[torch.Tensor, LinearChainCRF]:
        """The energy as a linear-chain CRF: (unary scores (B, T, K), chain) with
        ``E(one_hot(tags)) = −chain.score(unary, tags, mask)``, so ``chain.viterbi(unary, mask)`` is
        the exact minimiser over tag sequences. Only for energies without a high-order term."""
        if self.has_label_term:
            raise ValueError("chain_scores: the energy has a high-order term; it is not a linear chain")
        return self.unary_scores(feats), self.chain
