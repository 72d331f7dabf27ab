"""Hypergradients on a quadratic bilevel problem with closed-form ψ*(θ) = A(θ)⁻¹ b(θ)."""

import pytest
import torch

from infnet.implicit import hypergrad, tree

DT = torch.float64
PSI_SHAPES = {"x": (3,), "y": (2, 2), "z": ()}  # n = 8
N = 8
GEN = torch.Generator().manual_seed(0)
M0, M1, M2 = (torch.randn(N, N, generator=GEN, dtype=DT) / N**0.5 for _ in range(3))
TARGET = torch.randn(N, generator=GEN, dtype=DT)


def theta0():
    gen = torch.Generator().manual_seed(1)
    return {
        "a": torch.tensor(0.3, dtype=DT),  # 0-dim
        "s": torch.tensor([0.5], dtype=DT),  # size 1
        "w": torch.randn(N, generator=gen, dtype=DT),
        "outer_only": torch.randn(2, generator=gen, dtype=DT),
        "unused": torch.zeros(3, dtype=DT),
    }


def split(vec):
    sizes = [int(torch.Size(s).numel()) for s in PSI_SHAPES.values()]
    return {k: t.reshape(s) for (k, s), t in zip(PSI_SHAPES.items(), torch.split(vec, sizes))}


def a_mat(th):
    b = M0 + th["a"] * M1 + torch.tanh(th["s"]) * M2
    return b @ b.T + (0.5 + th["s"] ** 2) * torch.eye(N, dtype=DT)


def b_vec(th):
    return torch.sin(th["w"]) + th["a"] * TARGET


def inner(psi, th):
    """G = ½ψᵀA(θ)ψ − b(θ)ᵀψ."""
    p = tree.flatten(psi)
    return 0.5 * p @ a_mat(th) @ p - b_vec(th) @ p


def outer(psi, th):
    """F depends on ψ nonlinearly and directly on θ['a'] and θ['outer_only']."""
    p = tree.flatten(psi)
    return torch.log1p(((p - TARGET) ** 2).sum()) + th["a"] ** 3 + torch.cos(th["outer_only"]).sum()


def psi_star(th):
    return split(torch.linalg.solve(a_mat(th), b_vec(th)))


def analytic(th, damping=0.0):
    """dF/dθ by autograd through linalg.solve (damping=0), or the damped IFT formula written densely."""
    t = tree.detached(th, True)
    if damping == 0.0:
        grads = torch.autograd.grad(outer(psi_star(t), t), list(t.values()), allow_unused=True)
        return {k: torch.zeros_like(th[k]) if g is None else g for k, g in zip(t, grads)}
    p = tree.detached(psi_star(th), True)
    vp = torch.autograd.grad(outer(p, t), list(p.values()))
    u = torch.linalg.solve(a_mat(th) + damping * torch.eye(N, dtype=DT), torch.cat([g.reshape(-1) for g in vp]))
    g = torch.autograd.grad(inner(p, t), list(p.values()), create_graph=True)
    mixed = torch.autograd.grad(tree.flatten(dict(zip(p, g))), list(t.values()), u, allow_unused=True)
    direct = torch.autograd.grad(outer(p, t), list(t.values()), allow_unused=True)
    return {
        k: (0 if d is None else d) - (0 if m is None else m) + torch.zeros_like(th[k])
        for k, d, m in zip(t, direct, mixed)
    }


def close(grads, ref, rtol):
    for k in ref:
        torch.testing.assert_close(grads[k], ref[k], rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("solver", ["dense", "cg"])
def test_dense_and_cg_match_analytic(solver, mode):
    th = theta0()
    ref = analytic(th)
    assert all(ref[k].abs().sum() > 0 for k in ("a", "s", "w", "outer_only"))
    grads, info = hypergrad(inner, outer, psi_star(th), th, solver=solver, iters=50, tol=1e-13, hvp_mode=mode)
    close(grads, ref, 1e-8)
    assert info.converged and info.fallback is None and info.residual <= 1e-12
    assert info.unused_outer == ("unused",) and torch.equal(grads["unused"], torch.zeros(3, dtype=DT))
    assert info.hvp_calls == (N if solver == "dense" else info.iterations)


@pytest.mark.parametrize("solver", ["dense", "cg"])
def test_damping_matches_damped_formula(solver):
    th = theta0()
    grads, info = hypergrad(inner, outer, psi_star(th), th, solver=solver, iters=50, tol=1e-13, damping=0.7)
    close(grads, analytic(th, damping=0.7), 1e-8)
    undamped = analytic(th)
    assert (grads["w"] - undamped["w"]).abs().max() > 1e-3
    assert info.damping == 0.7


def test_neumann_error_shrinks_monotonically_with_iters():
    th = theta0()
    ref = tree.flatten(analytic(th))
    errs, alphas = [], set()
    for k in (0, 5, 10, 20, 40, 80, 160):
        grads, info = hypergrad(inner, outer, psi_star(th), th, solver="neumann", iters=k)
        assert not info.diverged and info.fallback is None
        errs.append(float((tree.flatten(grads) - ref).norm() / ref.norm()))
        alphas.add(info.alpha)
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-6 and len(alphas) == 1


def test_identity_exact_when_hessian_is_scaled_identity():
    alpha = 0.4
    th = theta0()

    def inner_iso(psi, t):  # H = I/α, ψ* = α b(θ)
        p = tree.flatten(psi)
        return 0.5 / alpha * p @ p - b_vec(t) @ p

    t = tree.detached(th, True)
    p_star = split(alpha * b_vec(t))
    grads_ref = torch.autograd.grad(outer(p_star, t), list(t.values()), allow_unused=True)
    ref = {k: torch.zeros_like(th[k]) if g is None else g for k, g in zip(t, grads_ref)}
    p0 = {k: v.detach() for k, v in p_star.items()}
    grads, info = hypergrad(inner_iso, outer, p0, th, solver="identity", alpha=alpha, diagnose=True)
    close(grads, ref, 1e-12)
    assert info.residual <= 1e-15 and info.converged and info.hvp_calls == 1
    wrong, _ = hypergrad(inner_iso, outer, p0, th, solver="identity", alpha=1.0)
    assert (wrong["w"] - ref["w"]).abs().max() > 1e-2


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_unrolled_from_optimum_equals_neumann_with_one_term_less(damping):
    """GD from ψ* on a quadratic: d ψ_K/dθ = −α Σ_{j<K} (I − α(H+ρI))^j ∂²G/∂ψ∂θ."""
    th = theta0()
    args = (inner, outer, psi_star(th), th)
    for k in (1, 4, 12):
        g_unr, i_unr = hypergrad(*args, solver="unrolled", iters=k, alpha=0.05, damping=damping)
        g_neu, _ = hypergrad(*args, solver="neumann", iters=k - 1, alpha=0.05, damping=damping)
        close(g_unr, g_neu, 1e-10)
        assert i_unr.iterations == k and i_unr.hvp_calls == k and i_unr.alpha == 0.05
        assert i_unr.unused_outer == ("unused",)
    g_def, i_def = hypergrad(*args, solver="unrolled", iters=3, damping=damping)
    _, i_neu = hypergrad(*args, solver="neumann", iters=3, damping=damping)
    assert i_def.alpha == pytest.approx(i_neu.alpha, rel=1e-12)  # the same power-iteration rule


def test_caller_tensors_untouched_and_result_structure():
    th = theta0()
    params = {k: torch.nn.Parameter(v.clone()) for k, v in th.items()}
    psi = {k: v.clone().requires_grad_(k == "x") for k, v in psi_star(th).items()}
    before_t = {k: v.detach().clone() for k, v in params.items()}
    before_p = {k: v.detach().clone() for k, v in psi.items()}
    for solver in ("cg", "neumann", "identity", "dense", "unrolled"):
        grads, info = hypergrad(inner, outer, psi, params, solver=solver, iters=5)
        assert list(grads) == list(params) and info.solver == solver
        for k, g in grads.items():
            assert g.shape == params[k].shape and g.dtype == params[k].dtype and g.device == params[k].device
            assert not g.requires_grad and g.grad_fn is None
    for k, v in params.items():
        assert torch.equal(v.detach(), before_t[k]) and v.grad is None and v.requires_grad
    for k, v in psi.items():
        assert torch.equal(v.detach(), before_p[k]) and v.grad is None and v.requires_grad == (k == "x")


def test_metrics_are_floats_and_skip_unmeasured():
    th = theta0()
    _, info = hypergrad(inner, outer, psi_star(th), th, solver="identity")
    metrics = info.as_metrics("hg/")
    assert "hg/residual" not in metrics and metrics["hg/alpha"] == 1.0 and metrics["hg/unused_outer"] == 1.0
    assert all(isinstance(v, float) for v in metrics.values())
    _, info = hypergrad(inner, outer, psi_star(th), th, solver="cg")
    metrics = info.as_metrics()
    assert metrics["hypergrad/converged"] == 1.0 and metrics["hypergrad/residual"] <= 1e-6
    assert metrics["hypergrad/hvp_calls"] == info.hvp_calls and "hypergrad/alpha" not in metrics
