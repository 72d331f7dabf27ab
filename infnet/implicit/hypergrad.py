"""Implicit-function-theorem hypergradient with safeguards.

With G the inner and F the outer objective and ψ at (approximately) argmin_ψ G(ψ, θ):

    dF/dθ = ∂F/∂θ − (∂²G/∂θ∂ψ) (∂²G/∂ψ∂ψ + ρI)⁻¹ ∂F/∂ψ.

Zero entries: an entry θ_k on which neither F nor G depends gets an exact zero gradient; this is
legitimate, not a failure, and such keys are listed in :attr:`HypergradInfo.unused_outer` so that a
disconnected parameter (e.g. one that was accidentally detached) is visible instead of silent.
Entries on which only G depends get only the mixed term, entries on which only F depends only ∂F/∂θ.

Defaults for the step size ``alpha`` (reported in ``info.alpha``):

* ``neumann`` and ``unrolled``: α = 1/λ_max(∂²G/∂ψ∂ψ + ρI), λ_max estimated by ``POWER_ITERS``
  power iterations at the given ψ started from ∂F/∂ψ (counted in ``hvp_calls``); α = 1 if the
  estimate is not positive.
* ``identity``: u = α ∂F/∂ψ with the given ``alpha``, or α = 1.0 when ``alpha`` is None.
* the ``"identity"`` fallback and CG's first-iteration negative-curvature exit: u = α ∂F/∂ψ with the
  given ``alpha``, or α = 1/(1 + ρ) when ``alpha`` is None (:func:`~infnet.implicit.solvers.safeguard_alpha`):
  the damped system (I + ρI) u = ∂F/∂ψ, so that a fallback step has the scale of the damped solves
  (at ρ = 10 a step of α = 1 would be about ten times theirs).

Residuals (``info.residual``, relative ‖(H+ρI)u − v‖/‖v‖): ``cg`` from its recurrence, ``dense``
from the materialised matrix, ``neumann`` with one extra HVP, ``identity`` only with
``diagnose=True`` (one HVP; otherwise NaN = "not measured", omitted from ``as_metrics``),
``unrolled`` the relative inner-gradient norm ‖∇_ψ G(ψ_K)‖/‖∇_ψ G(ψ_0)‖.

Safeguards: a non-finite solution, a diverged Neumann series, or a non-finite final gradient is
handled by ``fallback``: ``"identity"`` recomputes with u = α ∂F/∂ψ (α as above; zeros only if that
is non-finite too), ``"zero"`` returns zeros, ``"raise"`` raises :class:`HypergradError`. Every case
sets ``info.fallback`` to the reason; ``info.converged`` is then False. CG's negative curvature at
its first iteration is handled inside :func:`~infnet.implicit.solvers.cg` (identity approximation,
also reported in ``info.fallback``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from . import solvers, tree
from .hvp import (
    DEFAULT_HVP_MODE,
    HVP_MODES,
    HVPOperator,
    Loss,
    fill_zeros,
    grads_or_none,
    scalar_loss,
)
from .solvers import SolveInfo
from .tree import Tree
from .unrolled import unrolled

SOLVERS = ("cg", "neumann", "identity", "dense", "unrolled")
FALLBACKS = ("identity", "zero", "raise")


class HypergradError(RuntimeError):
    """Raised with ``fallback="raise"`` when the hypergradient could not be computed reliably."""


@dataclass
class HypergradInfo:
    """Diagnostics of one :func:`hypergrad` call.

    ``iterations``, ``residual``, ``alpha``, ``negative_curvature`` and ``diverged`` describe the
    requested solver; ``hvp_calls`` counts every Hessian-vector product (power iterations,
    residual checks and fallbacks included; unrolled: one per unrolled step); ``fallback`` is None
    or the reason the result was replaced; ``unused_outer`` lists θ keys with a structurally zero
    gradient (neither F nor G depends on them); ``outer_value`` is F at the given ψ (``unrolled``:
    at its last iterate ψ_K), so callers can log the outer loss without evaluating it again.
    """

    solver: str
    iterations: int
    residual: float
    converged: bool
    fallback: str | None
    negative_curvature: bool
    diverged: bool
    hvp_calls: int
    alpha: float | None
    hvp_mode: str
    damping: float
    unused_outer: tuple[str, ...] = ()
    outer_value: float = math.nan

    def as_metrics(self, prefix: str = "hypergrad/") -> dict[str, float]:
        """Numeric fields as ``{prefix + name: float}`` for logging; unmeasured (NaN/None) values are omitted."""
        values = {
            "iterations": self.iterations,
            "residual": self.residual,
            "converged": self.converged,
            "fallback": self.fallback is not None,
            "negative_curvature": self.negative_curvature,
            "diverged": self.diverged,
            "hvp_calls": self.hvp_calls,
            "alpha": self.alpha,
            "unused_outer": len(self.unused_outer),
        }
        return {prefix + k: float(v) for k, v in values.items() if v is not None and not math.isnan(float(v))}


class _Implicit:
    """The pieces of the implicit formula at (ψ, θ): ∂F/∂ψ (``rhs``), ∂F/∂θ and the HVP operator."""

    def __init__(
        self, inner_loss: Loss, outer_loss: Loss, psi: Tree, theta: Tree, hvp_mode: str, damping: float
    ) -> None:
        loss = scalar_loss(outer_loss(psi, theta), "outer_loss")
        self.outer_value = float(loss.detach())
        both = {**{("psi", k): v for k, v in psi.items()}, **{("theta", k): v for k, v in theta.items()}}
        grads = grads_or_none([loss], both)
        direct = {k: grads[("theta", k)] for k in theta}
        self.theta, self._direct = theta, fill_zeros(direct, theta)
        self.rhs = fill_zeros({k: grads[("psi", k)] for k in psi}, psi)
        self.op = HVPOperator(inner_loss, psi, theta, mode=hvp_mode, damping=damping)
        self.unused_outer = tuple(k for k, g in direct.items() if g is None and k in self.op.independent_outer)

    def gradient(self, u: Tree) -> Tree:
        """∂F/∂θ − (∂²G/∂θ∂ψ) u, detached, shaped like θ."""
        mixed = self.op.mixed(u)
        return {k: (self._direct[k] - m).detach() for k, m in mixed.items()}


# cuDNN's RNN kernels have no double backward (and no backward in eval mode): on CUDA the losses are
# differentiated through PyTorch's own, twice-differentiable kernels instead.
@torch.backends.cudnn.flags(enabled=False)
def hypergrad(
    inner_loss: Loss,
    outer_loss: Loss,
    inner_params: Mapping[str, Tensor],
    outer_params: Mapping[str, Tensor],
    solver: str = "cg",
    iters: int = 20,
    damping: float = 0.0,
    tol: float = 1e-6,
    alpha: float | None = None,
    fallback: str = "identity",
    *,
    hvp_mode: str = DEFAULT_HVP_MODE,
    diagnose: bool = False,
) -> tuple[Tree, HypergradInfo]:
    """Hypergradient dF/dθ of ``outer_loss`` through the inner optimum of ``inner_loss``.

    Args:
        inner_loss: G(ψ, θ) -> 0-dim tensor; ψ, θ are dicts of tensors.
        outer_loss: F(ψ, θ) -> 0-dim tensor (may ignore θ).
        inner_params: ψ at (approximately) argmin G(·, θ); any shapes incl. 0-dim. Not modified.
        outer_params: θ; any shapes incl. 0-dim. Not modified.
        solver: ``"cg" | "neumann" | "identity" | "dense" | "unrolled"``.
        iters: CG / Neumann iterations K, or unrolled steps.
        damping: ρ ≥ 0 added to the inner Hessian.
        tol: relative residual at which CG stops (and below which ``converged`` is reported).
        alpha: Neumann / identity / unrolled step size; None = the documented default (module doc).
        fallback: ``"identity" | "zero" | "raise"`` for non-finite or diverged results.
        hvp_mode: ``"reverse"`` (double backward on one reused graph) or ``"forward"``.
        diagnose: measure the identity solver's residual with one HVP.

    Returns:
        ``(grads, info)``: ``grads`` has the keys, shapes, dtypes and devices of ``outer_params``
        (detached tensors); ``info`` is a :class:`HypergradInfo`.
    """
    _validate(inner_params, outer_params, solver, iters, damping, tol, alpha, fallback, hvp_mode)
    psi, theta = tree.detached(inner_params, True), tree.detached(outer_params, True)
    parts = None
    if solver == "unrolled":
        step, calls = alpha, 0
        if step is None:
            parts = _Implicit(inner_loss, outer_loss, psi, theta, hvp_mode, damping)
            lam, calls = solvers.estimate_lambda_max(parts.op.matvec, parts.rhs)
            step = solvers.default_alpha(lam)
        raw, sinfo = unrolled(inner_loss, outer_loss, psi, theta, iters=iters, alpha=step, damping=damping, tol=tol)
        sinfo.hvp_calls += calls
        grads, unused = fill_zeros(raw, theta), tuple(k for k, g in raw.items() if g is None)
        reason = None if tree.is_finite(grads) else "non-finite unrolled hypergradient"
    else:
        parts = _Implicit(inner_loss, outer_loss, psi, theta, hvp_mode, damping)
        u, sinfo = _solve(solver, parts, iters, tol, alpha, diagnose)
        grads, unused, reason = None, parts.unused_outer, _failure(solver, u, sinfo)
        if reason is None:
            grads = parts.gradient(u)
            reason = None if tree.is_finite(grads) else f"non-finite {solver} hypergradient"
    info = HypergradInfo(
        solver=solver, iterations=sinfo.iterations, residual=sinfo.residual, converged=sinfo.converged,
        fallback=sinfo.fallback, negative_curvature=sinfo.negative_curvature, diverged=sinfo.diverged,
        hvp_calls=sinfo.hvp_calls, alpha=sinfo.alpha, hvp_mode=hvp_mode, damping=float(damping), unused_outer=unused,
        outer_value=sinfo.outer_value if solver == "unrolled" else parts.outer_value,
    )
    if reason is not None:
        parts = parts or _Implicit(inner_loss, outer_loss, psi, theta, hvp_mode, damping)
        grads = _fall_back(fallback, reason, parts, info, tol, alpha, diagnose)
    info.converged = info.converged and info.fallback is None
    return grads, info


def _solve(
    solver: str, parts: _Implicit, iters: int, tol: float, alpha: float | None, diagnose: bool
) -> tuple[Tree, SolveInfo]:
    """Run one of the linear solvers on (H + ρI) u = ∂F/∂ψ."""
    matvec, rhs = parts.op.matvec, parts.rhs
    if solver == "cg":
        return solvers.cg(matvec, rhs, iters=iters, tol=tol, identity_alpha=solvers.safeguard_alpha(alpha, parts.op.damping))
    if solver == "neumann":
        return solvers.neumann(matvec, rhs, iters=iters, tol=tol, alpha=alpha)
    if solver == "identity":
        return solvers.identity(matvec, rhs, tol=tol, alpha=alpha, diagnose=diagnose)
    return solvers.dense(matvec, rhs, tol=tol)


def _failure(solver: str, u: Tree, sinfo: SolveInfo) -> str | None:
    """Why the solution ``u`` cannot be used, or None."""
    if sinfo.diverged:
        return f"neumann series diverged after {sinfo.iterations} terms (alpha={sinfo.alpha:.3g})"
    if not tree.is_finite(u):
        return f"non-finite {solver} solution"
    return None


def _fall_back(
    policy: str, reason: str, parts: _Implicit, info: HypergradInfo, tol: float,
    alpha: float | None, diagnose: bool,
) -> Tree:
    """Apply the ``fallback`` policy, record the reason in ``info.fallback`` and return the gradient."""
    if policy == "raise":
        raise HypergradError(f"hypergradient failed: {reason}")
    if policy == "identity":
        step = solvers.safeguard_alpha(alpha, parts.op.damping)
        u, sinfo = solvers.identity(parts.op.matvec, parts.rhs, tol=tol, alpha=step, diagnose=diagnose)
        info.hvp_calls += sinfo.hvp_calls
        grads = parts.gradient(u)
        if tree.is_finite(grads):
            info.fallback = f"{reason}; identity approximation (alpha={sinfo.alpha:g})"
            return grads
        reason = f"{reason}; identity fallback also non-finite"
    info.fallback = f"{reason}; zero gradient returned"
    return tree.zeros_like(parts.theta)


def _validate(
    inner_params: Mapping[str, Tensor], outer_params: Mapping[str, Tensor], solver: str, iters: int,
    damping: float, tol: float, alpha: float | None, fallback: str, hvp_mode: str,
) -> None:
    """Raise ValueError/TypeError for arguments the engine cannot honour."""
    for name, params in (("inner_params", inner_params), ("outer_params", outer_params)):
        if not isinstance(params, Mapping) or not params:
            raise TypeError(f"{name} must be a non-empty dict of tensors")
        for k, v in params.items():
            if not isinstance(v, Tensor) or not v.is_floating_point():
                raise TypeError(f"{name}[{k!r}] must be a floating-point tensor")
    choices = (("solver", solver, SOLVERS), ("fallback", fallback, FALLBACKS), ("hvp_mode", hvp_mode, HVP_MODES))
    for name, value, allowed in choices:
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ValueError(f"iters must be a non-negative int, got {iters!r}")
    if not (math.isfinite(damping) and damping >= 0 and tol >= 0):
        raise ValueError(f"damping and tol must be finite and >= 0, got damping={damping}, tol={tol}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be None or a positive finite float, got {alpha}")
