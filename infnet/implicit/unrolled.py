"""Reference hypergradient by differentiating through explicit inner gradient-descent steps."""

from __future__ import annotations

from torch import Tensor

from . import tree
from .hvp import Loss, fill_zeros, grads_or_none, scalar_loss
from .solvers import SolveInfo
from .tree import Tree


def _inner_grad(inner_loss: Loss, psi: Tree, theta: Tree, create_graph: bool) -> Tree:
    """∇_ψ G(ψ, θ) shaped like ψ (zeros for entries G ignores)."""
    loss = scalar_loss(inner_loss(psi, theta), "inner_loss")
    return fill_zeros(grads_or_none([loss], psi, create_graph=create_graph), psi)


def unrolled(
    inner_loss: Loss,
    outer_loss: Loss,
    psi: Tree,
    theta: Tree,
    *,
    iters: int,
    alpha: float,
    damping: float = 0.0,
    tol: float = 0.0,
) -> tuple[dict[str, Tensor | None], SolveInfo]:
    """dF(ψ_K(θ), θ)/dθ through K = ``iters`` steps ψ_{k+1} = ψ_k − α(∇_ψ G(ψ_k, θ) + ρ(ψ_k − ψ_0)).

    ``psi`` (ψ_0) and ``theta`` are leaf trees with ``requires_grad=True``; ψ_0 is treated as a
    constant starting point. The damping ρ enters as the proximal term ρ/2‖ψ − ψ_0‖², so that
    unrolling from an exact optimum reproduces the damped Neumann series of the implicit formula.
    Every step is kept in the autograd graph (memory grows linearly with K); the backward pass
    costs K Hessian-vector and mixed products, reported as ``hvp_calls = K``.

    Returns the gradient tree shaped like θ, with ``None`` for entries that neither F nor G
    depends on, and a :class:`SolveInfo` whose ``residual`` is the relative inner-gradient norm
    ‖∇_ψ G(ψ_K)‖ / ‖∇_ψ G(ψ_0)‖ (0 when both vanish; one extra gradient evaluation) and
    ``converged`` means residual ≤ ``tol``.
    """
    p, g0 = psi, None
    for _ in range(iters):
        g = _inner_grad(inner_loss, p, theta, create_graph=True)
        if g0 is None:
            g0 = tree.norm(g)
        if damping:
            g = tree.axpy(damping, tree.axpy(-1.0, psi, p), g)
        p = tree.axpy(-alpha, g, p)
    loss = scalar_loss(outer_loss(p, theta), "outer_loss")
    grads = {k: None if g is None else g.detach() for k, g in grads_or_none([loss], theta).items()}
    gk = tree.norm(_inner_grad(inner_loss, tree.detached(p, True), theta, create_graph=False))
    g0 = gk if g0 is None else g0
    residual = gk / g0 if g0 > 0 else gk
    return grads, SolveInfo(iters, residual, residual <= tol, iters, alpha=alpha, outer_value=float(loss.detach()))
