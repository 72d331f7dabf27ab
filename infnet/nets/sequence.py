"""Sequence-labelling networks: token features F(x) and the inference network A_ψ(x).

``SeqFeatureNet`` is the BiLSTM-CNN tagger encoder (Ma & Hovy 2016; Lample et al. 2016 use a char
BiLSTM instead): each token is ``[word embedding; char encoding]`` and a BiLSTM runs over the
sentence. The character encoder is a CNN with max-pooling over characters rather than a char BiLSTM:
it reaches the same tagging accuracy in those papers and runs several times faster on CPU, where a
per-token recurrent loop over characters dominates the cost of a batch.

Padding is inert: padding characters and padding tokens never change the features of real tokens
(characters are masked before the convolution and the max, and the BiLSTM runs on packed sequences),
and features at padding positions are exactly zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from infnet.data.seq.types import PAD_ID, UNK_ID, SeqBatch


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with exactly-zero rows at padding: logits (B, T, K), mask (B, T) -> (B, T, K)."""
    return torch.where(mask.unsqueeze(-1), torch.softmax(logits, -1), 0.0)


def one_hot_tags(tags: torch.Tensor, mask: torch.Tensor, n_labels: int, dtype: torch.dtype) -> torch.Tensor:
    """tags (B, T) long (any value at padding), mask (B, T) -> one-hot y (B, T, K), zero rows at padding."""
    return torch.where(mask.unsqueeze(-1), fn.one_hot(tags.masked_fill(~mask, 0), n_labels).to(dtype), 0.0)


def unk_probabilities(n_words: int, word_dropout: float, counts: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """Train-time probability (n_words,) of replacing each word id by UNK_ID: 1 − (1 − word_dropout)·c/(c + α)
    for train count c (just ``word_dropout`` when α = 0 or no counts are given)."""
    if not 0.0 <= word_dropout <= 1.0 or alpha < 0:
        raise ValueError(f"need 0 <= word_dropout <= 1 and rare_unk >= 0, got {word_dropout}, {alpha}")
    keep = torch.ones(n_words, dtype=torch.float64)
    if counts is not None and alpha > 0:
        if counts.shape != (n_words,):
            raise ValueError(f"word_counts {tuple(counts.shape)} != ({n_words},)")
        counts = counts.to(torch.float64)
        keep = counts / (counts + alpha)
    return (1.0 - (1.0 - word_dropout) * keep).float()


class CharEncoder(nn.Module):
    """chars (N, C) int64 -> (N, char_hidden): char embeddings, a width-``window`` convolution
    (zero-padded, so a character's window sees zeros past the word's ends whatever C is) and a
    max over the word's real characters. A token with no characters encodes to zeros."""

    def __init__(self, n_chars: int, char_dim: int, char_hidden: int, window: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_chars, char_dim, padding_idx=PAD_ID)
        self.conv = nn.Conv1d(char_dim, char_hidden, window, padding="same")
        self.out_dim = char_hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars (N, C) int64 (PAD_ID = padding) -> (N, char_hidden)."""
        real = (chars != PAD_ID).unsqueeze(1)  # (N, 1, C)
        e = self.embed(chars).transpose(1, 2) * real  # (N, char_dim, C), zero at padding characters
        h = self.conv(e).masked_fill(~real, float("-inf")).amax(dim=2)
        return torch.where(real.any(dim=2), h, 0.0)


class SeqFeatureNet(nn.Module):
    """batch (SeqBatch) -> token features h (B, T, 2·lstm_hidden): a BiLSTM over
    ``[word embedding; char CNN]``, zero at padding. ``out_dim`` is the feature width.

    ``pretrained`` (n_words, word_dim) initialises the (trainable) word embeddings. ``dropout`` is
    applied to the BiLSTM input and output (and between layers). In training mode each real word id is
    replaced by UNK_ID (unknown-word training: the UNK embedding learns from contexts, and rare words
    stop being memorised): with probability ``word_dropout`` for every word, and, given the words' train
    counts ``word_counts`` (n_words,) and ``rare_unk`` α > 0, also with probability α / (α + count)
    (Kiperwasser & Goldberg 2016; α = 1 replaces train singletons half the time, as Lample et al. 2016).
    """

    def __init__(
        self,
        n_words: int,
        n_chars: int,
        word_dim: int = 100,
        char_dim: int = 30,
        char_hidden: int = 30,
        lstm_hidden: int = 100,
        lstm_layers: int = 1,
        dropout: float = 0.5,
        word_dropout: float = 0.0,
        pretrained: torch.Tensor | None = None,
        word_counts: torch.Tensor | None = None,
        rare_unk: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_words, word_dim, padding_idx=PAD_ID)
        if pretrained is not None:
            if pretrained.shape != (n_words, word_dim):
                raise ValueError(f"pretrained embeddings {tuple(pretrained.shape)} != ({n_words}, {word_dim})")
            with torch.no_grad():
                self.embed.weight.copy_(pretrained)
        self.chars = CharEncoder(n_chars, char_dim, char_hidden)
        self.lstm = nn.LSTM(
            word_dim + char_hidden,
            lstm_hidden,
            lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if lstm_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("unk_prob", unk_probabilities(n_words, word_dropout, word_counts, rare_unk), persistent=False)
        self.unk_training = bool(self.unk_prob.any())
        self.out_dim = 2 * lstm_hidden

    def forward(self, batch: SeqBatch) -> torch.Tensor:
        """batch: words (B, T), chars (B, T, C), mask (B, T) (left-aligned, ≥ 1 token per row) -> h (B, T, H)."""
        words, mask = batch.words, batch.mask
        if self.training and self.unk_training:
            drop = torch.rand(words.shape, device=words.device) < self.unk_prob[words]
            words = words.masked_fill(drop & mask, UNK_ID)
        char_enc = self.embed.weight.new_zeros(*mask.shape, self.chars.out_dim)
        char_enc[mask] = self.chars(batch.chars[mask])  # encode real tokens only
        x = self.dropout(torch.cat([self.embed(words), char_enc], dim=-1))
        lengths = mask.sum(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=mask.shape[1])
        return self.dropout(h)


class SeqInferenceNet(nn.Module):
    """A_ψ for sequences: ``forward: batch -> logits (B, T, K)``; ``probs`` gives per-token simplices.

    As in :class:`infnet.nets.InferenceNet`, the feature network (``self.features``, a
    :class:`SeqFeatureNet`) and the linear head (``self.head``: H -> K) are separate attributes so
    that energy methods can copy the pretrained features as F(x) and initialise the energy's unary
    term from the head. Logits at padding positions are the head's bias (mask them in any loss).
    """

    def __init__(self, features: SeqFeatureNet, n_labels: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(features.out_dim, n_labels)

    def forward(self, batch: SeqBatch) -> torch.Tensor:
        """batch (SeqBatch) -> logits (B, T, K)."""
        return self.head(self.features(batch))

    def probs(self, batch: SeqBatch) -> torch.Tensor:
        """batch (SeqBatch) -> y (B, T, K): softmax over K, exactly zero rows at padding."""
        return masked_softmax(self(batch), batch.mask)
