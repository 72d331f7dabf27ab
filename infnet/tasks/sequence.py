"""Sequence labelling: y (B, T, K) on per-token simplices with mask (B, T); span F1 (NER) or token
accuracy (POS) of the argmax tags."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as fn
from torch import nn

from infnet.data.seq.types import SeqBatch, SeqFeatures
from infnet.inference.gbi import GBIResult
from infnet.inference.gbi_simplex import simplex_mirror_descent
from infnet.metrics import span_f1, token_accuracy
from infnet.nets.seq_energy import SeqEnergy
from infnet.nets.sequence import SeqFeatureNet, SeqInferenceNet, masked_softmax
from infnet.task_metric import TASK_METRICS
from infnet.tasks.base import Objective, Selection, Task

EPS = 1e-6


class SequenceTask(Task):
    """Masked-softmax outputs, token cross-entropy, categorical entropy/samples, the sequence energy."""

    cache_train_features = False

    def __init__(self, data, model) -> None:  # noqa: ANN001 - a SeqDataset and the model config
        super().__init__(data, model)
        self.name = data.task  # "ner" | "pos"
        self.metric = TASK_METRICS[data.task].key  # "f1" | "acc"

    def build_infnet(self) -> nn.Module:
        s, d = self.model.seq, self.data
        features = SeqFeatureNet(
            d.n_words, d.n_chars, s.word_dim, s.char_dim, s.char_hidden, s.lstm_hidden, s.lstm_layers, s.dropout,
            s.word_dropout, pretrained=d.embeddings, word_counts=torch.from_numpy(d.words.counts), rare_unk=s.rare_unk,
        )
        return SeqInferenceNet(features, d.n_labels)

    def build_energy(self, feature_dim: int) -> nn.Module:
        e = self.model.seq_energy
        return SeqEnergy(
            feature_dim, self.data.n_labels, e.pairwise, e.high_order, e.order_hidden, e.order_window, e.global_scale,
            e.out_init, e.label_init,
        )

    def energy_input(self, h: torch.Tensor, x: SeqBatch) -> SeqFeatures:
        return SeqFeatures(h, x.mask)

    def relax(self, logits: torch.Tensor, x: SeqBatch) -> torch.Tensor:
        return masked_softmax(logits, x.mask)

    def ce_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Token cross-entropy summed over a sentence's tokens (y is zero at padding), batch mean."""
        return -(y * fn.log_softmax(logits, -1)).sum() / logits.shape[0]

    def nll(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -(y * p.clamp_min(EPS).log()).sum() / p.shape[0]

    def soft_f1_loss(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """1 − micro soft F1 over the (token, label) pairs of every label but ``O`` (for POS, with
        no ``O``, this is 1 − the expected token accuracy)."""
        keep = [k for k, tag in enumerate(self.data.tag_names) if tag != "O"]
        p, y = p[..., keep], y[..., keep]
        tp = (p * y).sum()
        return 1.0 - (2 * tp + EPS) / (p.sum() + y.sum() + EPS)

    def entropy(self, y: torch.Tensor) -> torch.Tensor:
        return -(y * y.clamp_min(EPS).log()).sum((1, 2)).mean()

    def gbi(self, objective: Objective, z0: torch.Tensor, x: SeqBatch, steps: int, lr: float, entropy: float) -> GBIResult:
        return simplex_mirror_descent(objective, z0, x.mask, steps, lr, entropy)

    def sample(self, p: torch.Tensor, n: int) -> torch.Tensor:
        """One-hot tag samples (B, n, T, K) from per-token categoricals p (zero rows stay zero)."""
        on = p.sum(-1, keepdim=True) > 0
        probs = torch.where(on, p, torch.ones_like(p))  # any valid distribution at padding
        tags = torch.distributions.Categorical(probs=probs).sample((n,)).transpose(0, 1)  # (B, n, T)
        return fn.one_hot(tags, p.shape[-1]).to(p.dtype) * on[:, None]

    def log_prob(self, y: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return (y * p.clamp_min(EPS).log()).sum((-2, -1))

    def gold(self, split) -> list[list[str]]:  # noqa: ANN001 - a SeqSplit
        return split.tags

    def decode(self, scores: torch.Tensor, gold: list[list[str]]) -> list[list[str]]:
        """Argmax tags of ``scores`` (N, T, K), each sentence cut to its gold length."""
        ids = scores.argmax(-1).tolist()
        names = self.data.tag_names
        return [[names[k] for k in row[: len(g)]] for row, g in zip(ids, gold)]

    def evaluate(self, scores: torch.Tensor, gold: list[list[str]]) -> float:
        pred = self.decode(scores, gold)
        return span_f1(gold, pred) if self.metric == "f1" else token_accuracy(gold, pred)

    def select(self, scores: torch.Tensor, gold: list[list[str]]) -> Selection:
        return Selection(self.evaluate(scores, gold))

    def score(self, scores: torch.Tensor, gold: list[list[str]], decision: float | None) -> dict[str, float]:
        return {self.metric: self.evaluate(scores, gold)}

    def write_predictions(self, path: Path, split, scores: torch.Tensor, decision: float | None) -> str:  # noqa: ANN001
        """``predictions.conll``: ``token gold predicted`` lines in the source files' tag scheme
        (IOB1 for CoNLL-2003), a blank line after each sentence (the conlleval input format)."""
        self.data.write_predictions(path / "predictions.conll", split, self.decode(scores, split.tags))
        return "predictions.conll"
