"""Multi-label classification: y (B, L) in [0, 1]^L, example-F1 at a dev-tuned threshold."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from infnet.data.mlc.synthetic import GENERATOR_VERSION, label_set_prior
from infnet.data.mlc.types import MLCSplit
from infnet.inference.gbi import GBIResult, mirror_descent
from infnet.losses import bce_prob_sum, bce_sum, bernoulli_entropy, soft_f1_loss
from infnet.metrics import example_f1, tune_threshold
from infnet.nets import InferenceNet, MLCEnergy
from infnet.nets.label_terms import PairwiseTerm, PriorTerm
from infnet.task_metric import TASK_METRICS
from infnet.tasks.base import Objective, Selection, Task


class MultiLabelTask(Task):
    """Sigmoid outputs, BCE, Bernoulli entropy/samples, the SPEN MLC energy."""

    name = "mlc"
    metric = TASK_METRICS["mlc"].key
    cache_train_features = True

    def build_infnet(self) -> nn.Module:
        m = self.model
        return InferenceNet(self.data.n_features, list(m.hidden), self.data.n_labels, m.dropout)

    def build_energy(self, feature_dim: int) -> nn.Module:
        e = self.model.energy
        structure: list[nn.Module] = []
        if e.get("pairwise", False):
            structure.append(PairwiseTerm(self.data.n_labels))
        if e.get("oracle", 0.0):
            structure.append(self.oracle_term(float(e.oracle)))
        return MLCEnergy(
            feature_dim, self.data.n_labels, e.label_hidden, e.depth, e.label_init, e.global_scale, e.out_init, structure
        )

    def oracle_term(self, weight: float) -> PriorTerm:
        """The generator's own log-prior over valid label sets (synthetic data only), times ``weight``."""
        if self.data.meta.get("generator") != GENERATOR_VERSION:
            raise ValueError(
                f"model.energy.oracle needs data=synthetic_mlc (generator {GENERATOR_VERSION}); "
                f"data {self.data.name!r} has no known label-set prior"
            )
        return PriorTerm(*label_set_prior(self.data.n_labels), weight=weight)

    def relax(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)

    def ce_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return bce_sum(logits, y)

    def nll(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return bce_prob_sum(p, y)

    def soft_f1_loss(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return soft_f1_loss(p, y)

    def entropy(self, y: torch.Tensor) -> torch.Tensor:
        return bernoulli_entropy(y)

    def gbi(self, objective: Objective, z0: torch.Tensor, x: torch.Tensor, steps: int, lr: float, entropy: float) -> GBIResult:
        return mirror_descent(objective, z0, steps, lr, entropy)

    def sample(self, p: torch.Tensor, n: int) -> torch.Tensor:
        return torch.bernoulli(p[:, None].expand(-1, n, *p.shape[1:]))

    def log_prob(self, y: torch.Tensor, p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        p = p.clamp(eps, 1 - eps)
        return (y * p.log() + (1 - y) * (1 - p).log()).sum(-1)

    def gold(self, split: MLCSplit) -> torch.Tensor:
        return torch.from_numpy(split.labels).float()

    def select(self, scores: torch.Tensor, gold: torch.Tensor) -> Selection:
        threshold, f1 = tune_threshold(scores, gold)
        return Selection(f1, threshold, {"f1_at_0.5": example_f1(scores, gold, 0.5)})

    def score(self, scores: torch.Tensor, gold: torch.Tensor, decision: float | None) -> dict[str, float]:
        return {"f1": example_f1(scores, gold, 0.5 if decision is None else decision), "f1_at_0.5": example_f1(scores, gold, 0.5)}

    def write_predictions(self, path: Path, split: MLCSplit, scores: torch.Tensor, decision: float | None) -> str:
        """``predictions.parquet``: per example the label probabilities ``scores`` (N, L) and the
        names of the gold and predicted labels (probability > ``decision``)."""
        names = self.data.label_names
        chosen = (scores > (0.5 if decision is None else decision)).numpy()

        def label_sets(rows) -> list[list[str]]:  # noqa: ANN001 - (N, L) boolean array
            return [[names[k] for k in row.nonzero()[0]] for row in rows]

        table = pa.table({
            "example": pa.array(range(len(scores)), pa.int64()),
            "gold": pa.array(label_sets(split.labels.astype(bool)), pa.list_(pa.string())),
            "predicted": pa.array(label_sets(chosen), pa.list_(pa.string())),
            "scores": pa.FixedSizeListArray.from_arrays(pa.array(scores.numpy().ravel(), pa.float32()), scores.shape[1]),
        })
        pq.write_table(table, path / "predictions.parquet")
        return "predictions.parquet"
