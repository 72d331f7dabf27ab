"""What a training method needs to know about the output structure: the ``Task`` interface.

Methods (``infnet.methods``) are written once against this interface; a task supplies the networks,
the relaxation of logits to outputs, the supervised and outer losses, gradient-based inference on
its output domain, samples for SEAL, and the dev/test metrics. Two tasks exist:
multi-label classification (``infnet.tasks.multilabel``: y (B, L) in [0, 1]^L) and sequence labelling
(``infnet.tasks.sequence``: y (B, T, K) on per-token simplices, mask (B, T)).

Shapes below: x is a task's model input (a dense (B, D) tensor, or a ``SeqBatch``); y and logits are
(B, *S) with S = (L,) or (T, K); padding positions of a sequence y are all-zero rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils._pytree import tree_map

from infnet.inference.gbi import GBIResult

Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Selection:
    """A dev evaluation: the selection ``metric`` in [0, 1], the ``decision`` parameter it was tuned
    with (the multi-label threshold; None where nothing is tuned) and other scalar metrics."""

    metric: float
    decision: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


def repeat_rows(tree: Any, n: int) -> Any:
    """Every tensor in ``tree`` (a tensor or a NamedTuple of tensors) with each row repeated ``n``
    times along dim 0: (B, ...) -> (B·n, ...)."""
    return tree_map(lambda t: t.repeat_interleave(n, 0), tree)


class Task(ABC):
    """The output-structure-specific pieces shared by every method (see the module docstring)."""

    name: ClassVar[str]
    #: name of the dev-selection metric ("f1" or "acc"): metrics are logged as ``dev/<metric>``
    metric: ClassVar[str]
    #: whether frozen features of the whole train split may be cached (fixed-size rows only)
    cache_train_features: ClassVar[bool]

    def __init__(self, data: Any, model: DictConfig) -> None:
        self.data = data
        self.model = model

    # --- networks ------------------------------------------------------------------------------
    @abstractmethod
    def build_infnet(self) -> nn.Module:
        """A_ψ with ``.features`` (the future frozen feature net F), ``.head`` (nn.Linear) and
        ``forward(x) -> logits (B, *S)``."""

    @abstractmethod
    def build_energy(self, feature_dim: int) -> nn.Module:
        """E_θ with ``forward(h, y) -> (B,)``, ``local_energy(h, y)``, ``global_energy(h, y)`` and
        ``init_local_from(head)``; h as returned by :meth:`energy_input`."""

    def energy_input(self, h: torch.Tensor, x: Any) -> Any:
        """What the energy reads besides y, from features ``h`` of input ``x``: h itself by default."""
        return h

    # --- outputs and losses ----------------------------------------------------------------------
    @abstractmethod
    def relax(self, logits: torch.Tensor, x: Any) -> torch.Tensor:
        """Logits (B, *S) of input x -> relaxed outputs y (B, *S)."""

    @abstractmethod
    def ce_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Supervised cross-entropy of logits (B, *S) against gold y (B, *S): summed over the
        output parts, averaged over the batch -> scalar."""

    @abstractmethod
    def nll(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of relaxed outputs p (B, *S) against gold y, same reduction -> scalar."""

    @abstractmethod
    def soft_f1_loss(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """1 − a smooth F1 of relaxed outputs p (B, *S) against gold y -> scalar."""

    def outer_loss(self, name: str, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The implicit method's outer objective ``name`` (soft_f1 | bce) of p against y -> scalar."""
        return self.soft_f1_loss(p, y) if name == "soft_f1" else self.nll(p, y)

    @abstractmethod
    def entropy(self, y: torch.Tensor) -> torch.Tensor:
        """Mean per-example entropy of relaxed outputs y (B, *S) -> scalar."""

    # --- inference and sampling ------------------------------------------------------------------
    @abstractmethod
    def gbi(self, objective: Objective, z0: torch.Tensor, x: Any, steps: int, lr: float, entropy: float) -> GBIResult:
        """Entropic mirror descent on ``objective`` (y (B, *S) -> (B,)) from logits z0 (B, *S)."""

    @abstractmethod
    def sample(self, p: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` discrete outputs per example drawn from relaxed p (B, *S) -> (B, n, *S)."""

    @abstractmethod
    def log_prob(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """log q(y) of discrete y (..., *S) under the factorised distribution p (broadcastable) -> (...)."""

    # --- evaluation ------------------------------------------------------------------------------
    @abstractmethod
    def gold(self, split: Any) -> Any:
        """The gold outputs of a split, in the form ``select`` and ``score`` take."""

    @abstractmethod
    def select(self, scores: torch.Tensor, gold: Any) -> Selection:
        """Dev evaluation of predictions ``scores`` (N, *S) (tuning any decision parameter)."""

    @abstractmethod
    def score(self, scores: torch.Tensor, gold: Any, decision: float | None) -> dict[str, float]:
        """Test metrics of ``scores`` (N, *S) at the dev-tuned ``decision``; ``<metric>`` is always a key."""

    @abstractmethod
    def write_predictions(self, path: Path, split: Any, scores: torch.Tensor, decision: float | None) -> str:
        """Write the predictions ``scores`` (N, *S) on ``split`` (at ``decision``) to a file in
        directory ``path``, in the form users read them; returns the file's name."""
