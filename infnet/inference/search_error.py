"""Search error of a discrete decoder (e.g. an inference network's argmax) against exact Viterbi."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from infnet.data.seq.types import SeqFeatures
from infnet.nets.seq_energy import SeqEnergy
from infnet.nets.sequence import one_hot_tags


@dataclass(frozen=True)
class SearchError:
    """``rate``: fraction of sentences whose decoded tags have energy > E(Viterbi) + eps;
    ``mean_gap``: mean of E(decoded) − E(Viterbi) over sentences; ``gaps`` (B,) the per-sentence gaps
    (≥ 0 up to rounding: Viterbi is the exact minimiser)."""

    rate: float
    mean_gap: float
    gaps: torch.Tensor


@torch.no_grad()
def search_error(energy: SeqEnergy, feats: SeqFeatures, tags: torch.Tensor, eps: float = 1e-6) -> SearchError:
    """Compare decoded ``tags (B, T)`` with the Viterbi tags of the chain energy ``energy`` (no
    high-order term) on ``feats`` (h (B, T, H), mask (B, T)); both are scored by the energy itself."""
    unary, chain = energy.chain_scores(feats)
    best = chain.viterbi(unary, feats.mask)
    k, dtype = energy.n_labels, unary.dtype
    gaps = energy(feats, one_hot_tags(tags, feats.mask, k, dtype)) - energy(feats, one_hot_tags(best, feats.mask, k, dtype))
    return SearchError(float((gaps > eps).double().mean()), float(gaps.mean()), gaps)
