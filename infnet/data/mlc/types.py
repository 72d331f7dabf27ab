"""Containers for multi-label data: sparse rows stay sparse until a batch is gathered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class SparseRows:
    """Rows of a feature matrix in CSR form.

    ``indptr`` (N+1,) int64, ``indices`` (nnz,) int32 column ids, ``values`` (nnz,) float32.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_cols: int

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_dense(cls, dense: np.ndarray) -> "SparseRows":
        """Build from a dense (N, D) array, keeping only non-zeros."""
        dense = np.asarray(dense, dtype=np.float32)
        mask = dense != 0
        counts = mask.sum(axis=1)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rows, cols = np.nonzero(mask)
        return cls(indptr, cols.astype(np.int32), dense[rows, cols].astype(np.float32), dense.shape[1])

    def take(self, idx: np.ndarray) -> "SparseRows":
        """The rows ``idx`` (M,) as a new ``SparseRows`` with M rows."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = self.indptr[idx], self.indptr[idx + 1]
        counts = ends - starts
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # positions of every kept entry, without a Python loop over rows: for the k-th entry of output
        # row r, its source position is starts[r] + k
        gather = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1] - starts, counts)
        return SparseRows(indptr, self.indices[gather], self.values[gather], self.n_cols)

    def dense(self, idx: np.ndarray | None = None) -> torch.Tensor:
        """Gather rows ``idx`` (B,) (all rows if None) into a dense float32 tensor (B, D)."""
        rows = self if idx is None else self.take(idx)
        n = len(rows)
        out = torch.zeros(n, self.n_cols, dtype=torch.float32)
        row_ids = np.repeat(np.arange(n), np.diff(rows.indptr))
        out[torch.from_numpy(row_ids), torch.from_numpy(rows.indices.astype(np.int64))] = torch.from_numpy(rows.values)
        return out


@dataclass(frozen=True)
class MLCSplit:
    """One split: ``features`` (N rows, D cols, sparse) and ``labels`` (N, L) uint8 in {0, 1}."""

    features: SparseRows
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    def take(self, idx: np.ndarray) -> "MLCSplit":
        """The examples ``idx`` (M,) as a new split."""
        return MLCSplit(self.features.take(idx), self.labels[np.asarray(idx, dtype=np.int64)])

    def map_inputs(
        self, fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device, batch_size: int = 2048
    ) -> torch.Tensor:
        """``fn`` applied to every input row in batches, without gradients: x (B, D) -> (B, ...),
        concatenated to (N, ...) on ``device``."""
        out = []
        with torch.no_grad():
            for start in range(0, len(self), batch_size):
                x = self.features.dense(np.arange(start, min(start + batch_size, len(self))))
                out.append(fn(x.to(device)))
        return torch.cat(out)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense tensors for examples ``idx`` (B,): x (B, D) float32, y (B, L) float32."""
        return self.features.dense(idx), torch.from_numpy(self.labels[idx].astype(np.float32))


@dataclass(frozen=True)
class MLCDataset:
    """A multi-label dataset with fixed train/dev/test splits.

    ``dev`` is carved from the source train split with ``dev_seed`` and ``dev_fraction``;
    ``source_sha256`` identifies the files it was parsed from.
    """

    name: str
    train: MLCSplit
    dev: MLCSplit
    test: MLCSplit
    feature_names: list[str]
    label_names: list[str]
    dev_seed: int
    dev_fraction: float
    source_sha256: str
    meta: dict = field(default_factory=dict)
    unlabeled: MLCSplit | None = None  # inputs without labels for methods that can use them (synthetic only)

    @property
    def n_features(self) -> int:
        return self.train.features.n_cols

    @property
    def n_labels(self) -> int:
        return self.train.labels.shape[1]
