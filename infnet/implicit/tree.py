"""Arithmetic on flat parameter dicts ``dict[str, Tensor]`` ("trees").

All functions treat a tree as one long vector: the concatenation of its tensors in key order.
Tensors keep their own shapes, dtypes and devices; 0-dim and size-1 tensors are ordinary entries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

Tree = dict[str, Tensor]


def detached(tree: Mapping[str, Tensor], requires_grad: bool) -> Tree:
    """Fresh leaf copies of every tensor (same shape/dtype/device), never aliasing the input."""
    return {k: v.detach().clone().requires_grad_(requires_grad) for k, v in tree.items()}


def zeros_like(tree: Mapping[str, Tensor]) -> Tree:
    """Zeros with the shape, dtype and device of each entry."""
    return {k: torch.zeros_like(v) for k, v in tree.items()}


def ones_like(tree: Mapping[str, Tensor]) -> Tree:
    """Ones with the shape, dtype and device of each entry."""
    return {k: torch.ones_like(v) for k, v in tree.items()}


def scale(alpha: float | Tensor, x: Mapping[str, Tensor]) -> Tree:
    """``alpha * x`` entry-wise; ``alpha`` is a Python float or a 0-dim tensor."""
    return {k: alpha * v for k, v in x.items()}


def axpy(alpha: float | Tensor, x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> Tree:
    """``y + alpha * x`` entry-wise (x and y have the same keys and shapes)."""
    return {k: y[k] + alpha * x[k] for k in y}


def clone(tree: Mapping[str, Tensor]) -> Tree:
    """Copies of every entry (same shape/dtype/device) that may be updated in place."""
    return {k: v.clone() for k, v in tree.items()}


def axpy_(alpha: float, x: Mapping[str, Tensor], y: Tree) -> Tree:
    """``y += alpha * x`` in place (one fused op over all entries); returns ``y``."""
    torch._foreach_add_(list(y.values()), [x[k] for k in y], alpha=alpha)
    return y


def xpay_(x: Mapping[str, Tensor], alpha: float, y: Tree) -> Tree:
    """``y = x + alpha * y`` in place (CG's new search direction); returns ``y``."""
    values = list(y.values())
    torch._foreach_mul_(values, alpha)
    torch._foreach_add_(values, [x[k] for k in y])
    return y


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """Inner product ``sum_k <a[k], b[k]>`` as a 0-dim tensor (summed in the promoted dtype)."""
    return torch.stack([(a[k] * b[k]).sum() for k in a]).sum()


def norm(a: Mapping[str, Tensor]) -> float:
    """Euclidean norm of the concatenated entries as a Python float (inf/nan propagate; no graph)."""
    return math.sqrt(float(dot(a, a).detach()))


def is_finite(a: Mapping[str, Tensor]) -> bool:
    """True when every entry of every tensor is finite."""
    return all(bool(torch.isfinite(v).all()) for v in a.values())


def flatten(a: Mapping[str, Tensor]) -> Tensor:
    """Concatenate the entries (in key order) into one vector of shape ``(n,)``, n = total numel."""
    return torch.cat([v.reshape(-1) for v in a.values()])


def unflatten(vec: Tensor, like: Mapping[str, Tensor]) -> Tree:
    """Inverse of :func:`flatten`: split ``vec`` (n,) into tensors shaped (and typed) like ``like``."""
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vec[start : start + v.numel()].reshape(v.shape).to(v.dtype)
        start += v.numel()
    return out

