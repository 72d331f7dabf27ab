"""Linear solvers for ``A u = v`` with A = ∂²G/∂ψ∂ψ + ρI given only as a matvec closure.

Every solver takes ``matvec: Tree -> Tree`` (A applied to a tree shaped like ψ) and ``rhs`` v
(a tree shaped like ψ) and returns ``(u, SolveInfo)`` with u shaped like v. ``SolveInfo.residual``
is the relative residual ‖A u − v‖ / ‖v‖ (0 when v = 0); ``hvp_calls`` counts calls of ``matvec``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import tree
from .tree import Tree

MatVec = Callable[[Tree], Tree]

POWER_ITERS = 10
"""Power iterations used to estimate λ_max(A) when a step size ``alpha`` is not given."""

DIVERGE_FACTOR = 10.0
"""Neumann divergence: a term ‖(I − αA)^k v‖ larger than this factor times ‖v‖ (or non-finite)."""


@dataclass
class SolveInfo:
    """Diagnostics of one linear solve (see module docstring for ``residual`` and ``hvp_calls``)."""

    iterations: int
    residual: float
    converged: bool
    hvp_calls: int
    alpha: float | None = None
    negative_curvature: bool = False
    diverged: bool = False
    fallback: str | None = None
    outer_value: float = math.nan  # unrolled only: F at the last iterate


def relative_residual(matvec: MatVec, u: Tree, rhs: Tree) -> float:
    """‖A u − v‖ / ‖v‖ with one matvec (0.0 when v = 0 and A u = 0)."""
    r = tree.norm(tree.axpy(-1.0, rhs, matvec(u)))
    b = tree.norm(rhs)
    return r / b if b > 0 else r


def estimate_lambda_max(matvec: MatVec, start: Tree, iters: int = POWER_ITERS) -> tuple[float, int]:
    """Power-iteration estimate of the largest |eigenvalue| of A; returns ``(lambda, matvecs used)``.

    Starts from ``start`` (the right-hand side: power iteration then sees exactly the spectrum
    the series or descent will excite), or from ones when ``start`` is zero. Returns ‖A q‖ for the
    last normalised iterate q, which for symmetric A is ≥ the Rayleigh quotient and ≤ λ_max.
    Stops early (returning that value) once it is zero or non-finite.
    """
    q = start if tree.norm(start) > 0 else tree.ones_like(start)
    lam, used = float("nan"), 0
    while used < iters:
        q = matvec(tree.scale(1.0 / tree.norm(q), q))
        lam, used = tree.norm(q), used + 1
        if not (lam > 0 and math.isfinite(lam)):
            break
    return lam, used


def default_alpha(lam: float) -> float:
    """The documented default step size α = 1/λ_max, or 1.0 when the estimate is not positive/finite."""
    return 1.0 / lam if lam > 0 and math.isfinite(lam) else 1.0


def safeguard_alpha(alpha: float | None, damping: float) -> float:
    """The step α of the identity approximation u = α v that stands in for a failed solve of (H + ρI) u = v
    (the identity fallback, CG's first-iteration negative-curvature exit): ``alpha`` if given, else 1/(1 + ρ).

    1/(1 + ρ) solves the damped system with H replaced by I exactly (α = 1 at ρ = 0, as without damping).
    It is never above 1/ρ, the largest step (H + ρI)⁻¹ takes for any H ⪰ 0, and ρ·u → v as ρ → ∞, the limit
    of ρ·(H + ρI)⁻¹v: a fallback step is on the scale of the damped solves it replaces.
    """
    return 1.0 / (1.0 + damping) if alpha is None else alpha


def cg(
    matvec: MatVec, rhs: Tree, *, iters: int, tol: float, identity_alpha: float = 1.0
) -> tuple[Tree, SolveInfo]:
    """Conjugate gradients on the symmetric A (not the normal equations), starting from u = 0.

    Stops when ‖r‖/‖v‖ ≤ ``tol`` or after ``iters`` iterations (one matvec each). If a search
    direction has pᵀAp ≤ 0 it stops with ``negative_curvature=True`` and returns the current iterate;
    at the very first iteration that iterate would be 0, so it returns ``identity_alpha * v`` instead
    and says so in ``fallback``. A non-finite curvature/residual stops the loop and the (non-finite)
    iterate is returned for the caller's safeguard to handle.
    """
    u, r = tree.zeros_like(rhs), tree.clone(rhs)  # u, r, p are updated in place
    p, rs = tree.clone(r), float(tree.dot(r, r))
    b = math.sqrt(rs)
    info = SolveInfo(iterations=0, residual=0.0, converged=True, hvp_calls=0)
    if b == 0:
        return u, info
    info.residual, info.converged = 1.0, False
    for k in range(iters):
        ap = matvec(p)
        info.hvp_calls += 1
        pap = float(tree.dot(p, ap))
        if pap <= 0:
            info.negative_curvature = True
            if k == 0:
                info.fallback = "negative curvature at the first CG iteration: identity approximation"
                u = tree.scale(identity_alpha, rhs)
            return u, info
        step = rs / pap
        tree.axpy_(step, p, u)
        tree.axpy_(-step, ap, r)
        rs_new = float(tree.dot(r, r))
        info.iterations, info.residual = k + 1, math.sqrt(rs_new) / b
        if info.residual <= tol:
            info.converged = True
            break
        if not math.isfinite(rs_new):
            break
        tree.xpay_(r, rs_new / rs, p)
        rs = rs_new
    return u, info


def neumann(
    matvec: MatVec, rhs: Tree, *, iters: int, tol: float, alpha: float | None = None
) -> tuple[Tree, SolveInfo]:
    """Truncated Neumann series u = α Σ_{k=0}^{K} (I − αA)^k v with K = ``iters`` (K matvecs).

    ``alpha=None`` uses α = 1/λ_max(A) from :func:`estimate_lambda_max` (``POWER_ITERS`` extra
    matvecs). The series converges iff |1 − αλ| < 1 on the excited spectrum (α < 2/λ_max for SPD A).
    A term that becomes non-finite or exceeds ``DIVERGE_FACTOR``·‖v‖ stops the series with
    ``diverged=True`` (the partial sum up to the previous term is returned). The true residual is
    measured with one extra matvec; ``converged`` means residual ≤ ``tol``.
    """
    calls = 0
    if alpha is None:
        lam, calls = estimate_lambda_max(matvec, rhs)
        alpha = default_alpha(lam)
    b = tree.norm(rhs)
    if b == 0:
        return tree.zeros_like(rhs), SolveInfo(0, 0.0, True, calls, alpha=alpha)
    term, total, diverged, done = tree.clone(rhs), tree.clone(rhs), False, 0  # updated in place
    for _ in range(iters):
        tree.axpy_(-alpha, matvec(term), term)
        calls += 1
        t = tree.norm(term)
        if not t <= DIVERGE_FACTOR * b:
            diverged = True
            break
        tree.axpy_(1.0, term, total)
        done += 1
    u = tree.scale(alpha, total)
    residual = relative_residual(matvec, u, rhs)
    info = SolveInfo(done, residual, residual <= tol, calls + 1, alpha=alpha, diverged=diverged)
    return u, info


def identity(
    matvec: MatVec, rhs: Tree, *, tol: float, alpha: float | None = None, diagnose: bool = False
) -> tuple[Tree, SolveInfo]:
    """Identity approximation A⁻¹ ≈ αI: u = α v (default α = 1.0), zero matvecs.

    The residual is only measured when ``diagnose=True`` (one matvec); otherwise it is reported as
    NaN ("not measured") and ``converged`` is False.
    """
    alpha = 1.0 if alpha is None else alpha
    u = tree.scale(alpha, rhs)
    if not diagnose:
        return u, SolveInfo(0, float("nan"), False, 0, alpha=alpha)
    residual = relative_residual(matvec, u, rhs)
    return u, SolveInfo(0, residual, residual <= tol, 1, alpha=alpha)


def dense(matvec: MatVec, rhs: Tree, *, tol: float) -> tuple[Tree, SolveInfo]:
    """Materialise A (n×n, n = total numel of ψ) from n matvecs and solve it directly.

    Uses :func:`torch.linalg.solve`, or the pseudo-inverse (least squares) when A is singular. For tests and tiny
    problems only. ``negative_curvature`` reports whether the symmetrised A has an eigenvalue ≤ 0.
    """
    b = tree.flatten(rhs)
    n = b.numel()
    eye = torch.eye(n, dtype=b.dtype, device=b.device)
    a = torch.stack([tree.flatten(matvec(tree.unflatten(eye[i], rhs))) for i in range(n)], dim=1)
    try:
        x = torch.linalg.solve(a, b)
    except torch.linalg.LinAlgError:
        x = torch.linalg.pinv(a) @ b
    bn = float(b.norm())
    residual = float((a @ x - b).norm()) / bn if bn > 0 else float((a @ x).norm())
    curvature = float(torch.linalg.eigvalsh((a + a.T) / 2).min()) if torch.isfinite(a).all() else float("nan")
    info = SolveInfo(n, residual, residual <= tol, n, negative_curvature=curvature <= 0)
    return tree.unflatten(x, rhs), info
