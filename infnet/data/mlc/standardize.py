"""Standardisation of numeric feature columns with train statistics only."""

from __future__ import annotations

import numpy as np

from infnet.data.mlc.types import SparseRows


def standardize(
    train: SparseRows, others: list[SparseRows], numeric: np.ndarray, center: bool
) -> tuple[SparseRows, list[SparseRows], dict]:
    """Standardise the columns flagged in ``numeric`` (D,) bool using statistics of ``train``.

    ``center=False`` (sparse inputs) divides by the train std and keeps sparsity; ``center=True``
    (dense inputs) subtracts the train mean and divides by the train std.  Non-numeric columns and
    columns with zero train std are left unchanged.  Returns (train, others, meta) where meta records
    the mode and the per-column ``mean`` (only when centering) and ``std`` (D,) used.
    """
    if not numeric.any():
        return train, others, {"mode": "none", "numeric_columns": 0}
    n_rows = max(len(train), 1)
    sums = np.bincount(train.indices, weights=train.values, minlength=train.n_cols)
    squares = np.bincount(train.indices, weights=train.values.astype(np.float64) ** 2, minlength=train.n_cols)
    mean = np.where(numeric, sums / n_rows, 0.0)
    std = np.sqrt(np.maximum(squares / n_rows - (sums / n_rows) ** 2, 0.0))
    std = np.where(numeric & (std > 0), std, 1.0)
    meta = {"mode": "center_scale" if center else "scale", "numeric_columns": int(numeric.sum()), "std": std.tolist()}
    if center:
        meta["mean"] = mean.tolist()

    def rescale(rows: SparseRows) -> SparseRows:
        if center:
            return SparseRows.from_dense((rows.dense().numpy() - mean) / std)
        return SparseRows(rows.indptr, rows.indices, (rows.values / std[rows.indices]).astype(np.float32), rows.n_cols)

    return rescale(train), [rescale(rows) for rows in others], meta
