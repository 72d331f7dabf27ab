"""Hypergradients of a tiny inference-network bilevel problem vs central finite differences.

Inner: a linear inference network y = W x + c (ψ = {W, c}) minimises a convex energy
E_θ(x, y) averaged over a batch plus an L2 penalty (strong convexity). Outer: validation loss of
the network plus a penalty on θ. ψ*(θ) is obtained with damped Newton to machine precision.
"""

import pytest
import torch
import torch.nn.functional as fn

from infnet.implicit import hypergrad, tree

DT = torch.float64
D_IN, D_OUT, BATCH, L2 = 4, 3, 24, 0.5
GEN = torch.Generator().manual_seed(0)
X = torch.randn(BATCH, D_IN, generator=GEN, dtype=DT)
X_VAL = torch.randn(BATCH, D_IN, generator=GEN, dtype=DT)
Y_VAL = torch.randn(BATCH, D_OUT, generator=GEN, dtype=DT)
PSI_SHAPES = {"W": (D_OUT, D_IN), "c": (D_OUT,)}


def theta0():
    gen = torch.Generator().manual_seed(1)
    return {
        "U": torch.randn(D_OUT, D_IN, generator=gen, dtype=DT),
        "V": torch.randn(D_OUT, D_IN, generator=gen, dtype=DT),
        "q": torch.randn(D_OUT, generator=gen, dtype=DT),
        "tau": torch.tensor(0.2, dtype=DT),
    }


def energy(th, x, y):
    """E_θ(x, y) = ½ Σ softplus(q) y² − yᵀUx + e^τ Σ softplus(y − Vx), convex in y; shape (B,)."""
    quad = 0.5 * (fn.softplus(th["q"]) * y**2).sum(-1)
    return quad - (y * (x @ th["U"].T)).sum(-1) + torch.exp(th["tau"]) * fn.softplus(y - x @ th["V"].T).sum(-1)


def net(psi, x):
    return x @ psi["W"].T + psi["c"]


def inner(psi, th):
    return energy(th, X, net(psi, X)).mean() + 0.5 * L2 * sum((v**2).sum() for v in psi.values())


def outer(psi, th):
    return 0.5 * ((net(psi, X_VAL) - Y_VAL) ** 2).sum(-1).mean() + 0.01 * (th["U"] ** 2).sum()


def _flat_inner(vec, th):
    sizes = [int(torch.Size(s).numel()) for s in PSI_SHAPES.values()]
    psi = {k: t.reshape(s) for (k, s), t in zip(PSI_SHAPES.items(), torch.split(vec, sizes))}
    return inner(psi, th), psi


def solve_inner(th):
    """Damped Newton on the strongly convex G(·, θ) until the gradient norm is at rounding level."""
    th = {k: v.detach() for k, v in th.items()}
    vec = torch.zeros(sum(int(torch.Size(s).numel()) for s in PSI_SHAPES.values()), dtype=DT)
    for _ in range(50):
        v = vec.clone().requires_grad_()
        loss, _ = _flat_inner(v, th)
        (grad,) = torch.autograd.grad(loss, v)
        if grad.norm() <= 1e-14:
            break
        hess = torch.autograd.functional.hessian(lambda p: _flat_inner(p, th)[0], vec)
        step, t = torch.linalg.solve(hess, grad), 1.0
        # backtrack while the loss rises by more than its rounding error (near ψ* a full Newton step
        # changes the loss by ~‖grad‖², below what float64 resolves, and must not be refused for it)
        while _flat_inner(vec - t * step, th)[0] > loss.detach() + 1e-13 * abs(float(loss)) and t > 1e-8:
            t /= 2
        vec = vec - t * step
    else:
        raise AssertionError("Newton did not converge")
    return {k: v.detach() for k, v in _flat_inner(vec, th)[1].items()}


def value(th):
    """F(ψ*(θ), θ)."""
    return float(outer(solve_inner(th), th))


def fd_directional(th, direction, eps=1e-4):
    plus = {k: th[k] + eps * direction[k] for k in th}
    minus = {k: th[k] - eps * direction[k] for k in th}
    return (value(plus) - value(minus)) / (2 * eps)


def directions(count=3):
    gen = torch.Generator().manual_seed(2)
    out = []
    for _ in range(count):
        d = {k: torch.randn(v.shape, generator=gen, dtype=DT) for k, v in theta0().items()}
        out.append(tree.scale(1.0 / tree.norm(d), d))
    return out


def gd_iterates(th, alpha, steps):
    """ψ_K of plain gradient descent from ψ_0 = 0 (no graph), for each K in ``steps``."""
    psi = {k: torch.zeros(s, dtype=DT) for k, s in PSI_SHAPES.items()}
    out, done = {}, 0
    for k in sorted(steps):
        for _ in range(k - done):
            p = tree.detached(psi, True)
            grads = torch.autograd.grad(inner(p, th), list(p.values()))
            psi = {key: psi[key] - alpha * g for key, g in zip(psi, grads)}
        out[k], done = psi, k
    return out


@pytest.fixture(scope="module")
def fd_reference():
    th = theta0()
    return th, [(d, fd_directional(th, d)) for d in directions()]


@pytest.mark.parametrize(("solver", "mode"), [("cg", "reverse"), ("cg", "forward"), ("dense", "reverse")])
def test_implicit_hypergradient_matches_finite_differences(fd_reference, solver, mode):
    th, refs = fd_reference
    psi = solve_inner(th)
    grads, info = hypergrad(inner, outer, psi, th, solver=solver, iters=100, tol=1e-12, hvp_mode=mode)
    assert info.converged and info.fallback is None and not info.negative_curvature
    for d, fd in refs:
        assert abs(fd) > 1e-3
        assert float(tree.dot(grads, d)) == pytest.approx(fd, rel=1e-7)


def test_unrolled_with_many_steps_approaches_finite_differences(fd_reference):
    th, refs = fd_reference
    psi0 = {k: torch.zeros(s, dtype=DT) for k, s in PSI_SHAPES.items()}
    errors = []
    for steps in (10, 100, 400):
        grads, info = hypergrad(inner, outer, psi0, th, solver="unrolled", iters=steps)
        assert 0 < info.alpha and info.fallback is None
        errors.append(max(abs(float(tree.dot(grads, d)) - fd) / abs(fd) for d, fd in refs))
    assert errors[0] > 1e-3  # a short unroll from ψ_0 = 0 is visibly biased ...
    assert errors[1] < errors[0] and errors[2] < errors[1]
    assert errors[2] <= 1e-7  # ... and many steps reach the finite-difference value


def test_implicit_unrolled_gap_shrinks_with_inner_accuracy():
    th = theta0()
    psi0 = {k: torch.zeros(s, dtype=DT) for k, s in PSI_SHAPES.items()}
    alpha = hypergrad(inner, outer, psi0, th, solver="unrolled", iters=1)[1].alpha
    steps = (5, 10, 20, 40, 80, 160)
    iterates = gd_iterates(th, alpha, steps)
    gaps, inner_grad_norms = [], []
    p0 = tree.detached(psi0, True)
    g0 = tree.norm(dict(zip(p0, torch.autograd.grad(inner(p0, th), list(p0.values())))))
    for k in steps:
        implicit, _ = hypergrad(inner, outer, iterates[k], th, solver="dense")
        unrolled, info = hypergrad(inner, outer, psi0, th, solver="unrolled", iters=k, alpha=alpha)
        gaps.append(tree.norm(tree.axpy(-1.0, unrolled, implicit)) / tree.norm(implicit))
        p = tree.detached(iterates[k], True)
        inner_grad_norms.append(tree.norm(dict(zip(p, torch.autograd.grad(inner(p, th), list(p.values()))))))
        assert info.residual == pytest.approx(inner_grad_norms[-1] / g0, rel=1e-6)
    assert all(b < a for a, b in zip(inner_grad_norms, inner_grad_norms[1:]))
    assert all(b < a for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[0] > 1e-2 and gaps[-1] < 1e-6
