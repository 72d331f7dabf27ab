"""The SPEN multi-label energy E_θ(x, y); lower is better.

``E(x, y) = -Σ_l y_l (b_lᵀ F(x) + a_l)  +  s · c₂ᵀ g(C₁ y)``: a local term linear in y and a global
label term (an MLP over y with softplus non-linearities, ``depth`` hidden layers of ``label_hidden``
units). The energy reads precomputed features ``F(x)`` so that the feature network can be frozen
(Tu & Gimpel) or shared.

Capacity of the label term is ``label_hidden`` × ``depth``. To keep the global term from being inert
(its y-gradient was ~3e-4 of the local term's with the N(0, 0.1²)/N(0, 0.01²) initialisation of
earlier SPEN code), ``C₁`` is initialised with unit-norm rows scaled by ``label_init`` (so the hidden
units are not saturated or vanishing), ``y`` is centred at 0.5 before entering the label MLP (so its
pre-activations are not dominated by label cardinality), a learnable log-scale ``s`` multiplies the
whole term, and ``c₂`` starts at zero (see ``reset_label_term``): the gradient reaching ``c₂`` is then
O(1) from the first step, and the diagnostic ``energy/grad_ratio_global_local`` shows how much the
term has grown.

Beside (or instead of) the label MLP, ``structure`` adds terms over y from :mod:`infnet.nets.label_terms`:
a learned pairwise ``yᵀWy`` (can express exclusion and co-occurrence directly) or a known prior over
label sets (the oracle of a synthetic generator). Every term outside ``local`` is "the label term".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as fn
from torch import nn


class MLCEnergy(nn.Module):
    """Energy over features ``h (B, H)`` and relaxed labels ``y (B, L)`` -> ``(B,)``."""

    def __init__(
        self,
        feature_dim: int,
        n_labels: int,
        label_hidden: int = 16,
        depth: int = 1,
        label_init: float = 1.0,
        global_scale: float = 1.0,
        out_init: float = 0.0,
        structure: list[nn.Module] | None = None,
    ) -> None:
        if global_scale < 0:
            raise ValueError(f"global_scale must be >= 0, got {global_scale}")
        super().__init__()
        self.local = nn.Linear(feature_dim, n_labels)
        widths = [n_labels] + [label_hidden] * depth
        self.label_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.label_out = nn.Linear(widths[-1], 1, bias=False)
        self.has_label_term = global_scale > 0  # global_scale=0: local term only (ablation)
        self.log_scale = nn.Parameter(torch.tensor(math.log(global_scale) if self.has_label_term else 0.0))
        self.structure = nn.ModuleList(structure or [])
        self.reset_label_term(label_init, out_init)

    def reset_label_term(self, label_init: float, out_init: float = 0.0) -> None:
        """Initialise the label MLP: rows of each hidden weight ~ unit norm × ``label_init``; the output
        weights c₂ start at zero by default (``out_init=0``), so the initial energy is the (pretrained) local term alone and the
        label term grows only as training finds label interactions worth encoding (a random c₂ makes
        the untrained energy push predictions in random directions)."""
        for layer in self.label_layers:
            nn.init.normal_(layer.weight)
            with torch.no_grad():
                layer.weight.mul_(label_init / layer.weight.norm(dim=1, keepdim=True).clamp_min(1e-12))
            nn.init.zeros_(layer.bias)
        if out_init > 0:  # c₂ ~ N(0, out_init² / width): a random label term from the start
            nn.init.normal_(self.label_out.weight, std=out_init / math.sqrt(self.label_out.in_features))
        else:
            nn.init.zeros_(self.label_out.weight)

    def init_local_from(self, head: nn.Linear) -> None:
        """Copy a pretrained classifier head (logits = W h + a) so that the local energy is ``-yᵀ logits``."""
        with torch.no_grad():
            self.local.weight.copy_(head.weight)
            self.local.bias.copy_(head.bias)

    def local_energy(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """h (B, H), y (B, L) -> (B,) = -Σ_l y_l (b_lᵀ h + a_l)."""
        return -(y * self.local(h)).sum(-1)

    def global_energy(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """h (B, H) (unused: the label terms read y only), y (B, L) -> (B,) = s · c₂ᵀ g(C₁ (y - 0.5))
        (zero without the label MLP) plus every ``structure`` term."""
        energy = y.new_zeros(y.shape[:-1])
        if self.has_label_term:
            z = y - 0.5
            for layer in self.label_layers:
                z = fn.softplus(layer(z))
            energy = energy + self.log_scale.exp() * self.label_out(z).squeeze(-1)
        for term in self.structure:
            energy = energy + term(y)
        return energy

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """h (B, H), y (B, L) -> energy (B,)."""
        return self.local_energy(h, y) + self.global_energy(h, y)
