"""Linear solvers of infnet.implicit.solvers on explicit matrices with dict right-hand sides."""

import math

import pytest
import torch

from infnet.implicit import cg, dense, estimate_lambda_max, identity, neumann, tree
from infnet.implicit.solvers import DIVERGE_FACTOR, POWER_ITERS

DT = torch.float64
SHAPES = {"a": (2, 3), "b": (), "c": (1,), "d": (4,)}  # n = 12
N = 12


def spd(eigs, seed=0):
    """Symmetric matrix Q diag(eigs) Qᵀ with a random orthogonal Q."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=gen, dtype=DT))
    return q @ torch.diag(torch.as_tensor(eigs, dtype=DT)) @ q.T


def rhs(seed=1, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen, dtype=DT) for k, s in shapes.items()}


def op(a, like):
    return lambda v: tree.unflatten(a @ tree.flatten(v), like)


def rel_err(u, a, v):
    exact = torch.linalg.solve(a, tree.flatten(v))
    return float((tree.flatten(u) - exact).norm() / exact.norm())


@pytest.mark.parametrize("cond", [10.0, 1e3, 1e6])
def test_dense_matches_linalg_solve(cond):
    a, v = spd(torch.logspace(0, math.log10(cond), N)), rhs()
    u, info = dense(op(a, v), v, tol=1e-10)
    assert {k: t.shape for k, t in u.items()} == {k: torch.Size(s) for k, s in SHAPES.items()}
    assert rel_err(u, a, v) <= 1e-15 * cond * 10
    assert info.hvp_calls == N and info.converged and not info.negative_curvature


def test_dense_singular_uses_least_squares():
    a, v = torch.diag(torch.tensor([2.0, 0.0], dtype=DT)), {"x": torch.tensor([4.0, 0.0], dtype=DT)}
    u, info = dense(op(a, v), v, tol=1e-12)
    torch.testing.assert_close(u["x"], torch.tensor([2.0, 0.0], dtype=DT), rtol=0, atol=1e-14)
    assert info.residual <= 1e-14 and info.negative_curvature  # a zero eigenvalue counts as ≤ 0


@pytest.mark.parametrize("cond", [3.0, 10.0])
def test_cg_exact_in_n_steps(cond):
    # Well-conditioned on purpose: in floating point, loss of orthogonality delays CG's finite
    # termination on ill-conditioned systems (cond 1e3 needs ~n + 5 steps in float64).
    a, v = spd(torch.logspace(0, math.log10(cond), N)), rhs()
    u, info = cg(op(a, v), v, iters=N, tol=0.0)
    assert info.iterations == N and info.hvp_calls == N
    assert rel_err(u, a, v) <= 1e-13 and info.residual <= 1e-13
    _, short = cg(op(a, v), v, iters=N - 1, tol=0.0)
    assert short.residual > 1e3 * info.residual  # n - 1 steps are not enough for n distinct eigenvalues


def test_cg_ill_conditioned_converges_to_tolerance():
    a, v = spd(torch.logspace(0, 6, N)), rhs()
    u, info = cg(op(a, v), v, iters=10 * N, tol=1e-12)
    assert info.converged and info.residual <= 1e-12 and rel_err(u, a, v) <= 1e-12 * 1e6


def test_cg_stops_at_tolerance_with_true_residual():
    a, v = spd(torch.linspace(1, 4, N)), rhs()
    u, info = cg(op(a, v), v, iters=100, tol=1e-6)
    true = float((a @ tree.flatten(u) - tree.flatten(v)).norm() / tree.flatten(v).norm())
    assert info.converged and info.iterations < N and info.residual <= 1e-6
    assert true == pytest.approx(info.residual, rel=1e-6)


def test_cg_zero_rhs():
    v = {"x": torch.zeros(3, dtype=DT)}
    u, info = cg(op(torch.eye(3, dtype=DT), v), v, iters=5, tol=1e-8)
    assert info.converged and info.iterations == 0 and info.hvp_calls == 0
    assert torch.equal(u["x"], torch.zeros(3, dtype=DT))


def test_cg_negative_curvature_later_iteration_returns_iterate():
    """A = diag(1, -1), v = (2, 1): vᵀAv = 3 > 0, the second direction (20/9, 40/9) has pᵀAp < 0."""
    a, v = torch.diag(torch.tensor([1.0, -1.0], dtype=DT)), {"x": torch.tensor([2.0, 1.0], dtype=DT)}
    u, info = cg(op(a, v), v, iters=10, tol=1e-12)
    assert info.negative_curvature and info.iterations == 1 and info.fallback is None and not info.converged
    torch.testing.assert_close(u["x"], torch.tensor([10 / 3, 5 / 3], dtype=DT), rtol=1e-14, atol=0)


def test_cg_negative_curvature_first_iteration_uses_identity():
    a = spd([-2.0] + [1.0] * (N - 1))
    q = torch.linalg.eigh(a).eigenvectors[:, 0]  # eigenvector of -2
    v = tree.unflatten(q, rhs())
    u, info = cg(op(a, v), v, iters=10, tol=1e-12, identity_alpha=0.5)
    assert info.negative_curvature and info.iterations == 0 and info.hvp_calls == 1
    assert info.fallback is not None and "identity" in info.fallback
    torch.testing.assert_close(tree.flatten(u), 0.5 * q, rtol=0, atol=0)


def test_neumann_error_falls_geometrically():
    a, v = spd(torch.linspace(1, 10, N)), rhs()
    alpha = 1.8 / 10  # < 2/λ_max; contraction ρ = max|1 − αλ| = 0.82 (at λ = 1)
    rho = 1 - alpha
    exact_norm = float(torch.linalg.solve(a, tree.flatten(v)).norm())
    errs = []
    for k in range(0, 61, 10):
        u, info = neumann(op(a, v), v, iters=k, tol=1e-12, alpha=alpha)
        assert not info.diverged and info.iterations == k and info.hvp_calls == k + 1 and info.alpha == alpha
        errs.append(rel_err(u, a, v))
        assert errs[-1] <= rho ** (k + 1) * (1 + 1e-9)  # ‖A⁻¹(I − αA)^{k+1} v‖ ≤ ρ^{k+1} ‖A⁻¹ v‖
    assert all(e2 < e1 for e1, e2 in zip(errs, errs[1:]))
    observed_rate = (errs[-1] / errs[-4]) ** (1 / 30)
    assert rho * 0.95 <= observed_rate <= rho * (1 + 1e-6)
    assert exact_norm > 0


def test_neumann_default_alpha_from_power_iteration():
    lam_max = 10.0
    a, v = spd(torch.linspace(1, lam_max, N)), rhs()
    lam, used = estimate_lambda_max(op(a, v), v)
    assert used == POWER_ITERS and lam_max / 2 < lam <= lam_max * (1 + 1e-12)
    u, info = neumann(op(a, v), v, iters=150, tol=1e-6)
    assert info.alpha == pytest.approx(1 / lam, rel=1e-12)
    assert info.hvp_calls == POWER_ITERS + 150 + 1 and not info.diverged
    assert info.converged and rel_err(u, a, v) <= 1e-6


def test_neumann_divergence_flagged():
    a, v = spd(torch.linspace(1, 10, N)), rhs()
    u, info = neumann(op(a, v), v, iters=200, tol=1e-6, alpha=2.5 / 10)  # |1 − αλ_max| = 1.5
    assert info.diverged and 0 < info.iterations < 200 and not info.converged
    assert tree.is_finite(u) and info.residual > 1.0
    assert DIVERGE_FACTOR > 1


def test_identity_solver():
    a, v = spd(torch.linspace(1, 3, N)), rhs()
    u, info = identity(op(a, v), v, tol=1e-6, alpha=0.25)
    torch.testing.assert_close(tree.flatten(u), 0.25 * tree.flatten(v), rtol=0, atol=0)
    assert info.hvp_calls == 0 and math.isnan(info.residual) and not info.converged and info.alpha == 0.25
    _, diag = identity(op(a, v), v, tol=1e-6, alpha=0.25, diagnose=True)
    expected = float((a @ (0.25 * tree.flatten(v)) - tree.flatten(v)).norm() / tree.flatten(v).norm())
    assert diag.hvp_calls == 1 and diag.residual == pytest.approx(expected, rel=1e-12) and diag.residual > 0.1
    _, exact = identity(op(4 * torch.eye(N, dtype=DT), v), v, tol=1e-12, alpha=0.25, diagnose=True)
    assert exact.residual <= 1e-15 and exact.converged
    assert identity(op(a, v), v, tol=1e-6)[1].alpha == 1.0


@pytest.mark.parametrize("solver", ["cg", "neumann", "dense", "identity"])
def test_scalar_and_size_one_systems(solver):
    shapes = {"s": (), "o": (1,)}
    v = rhs(shapes=shapes)
    a = torch.diag(torch.tensor([2.0, 2.0], dtype=DT))  # identity is exact for α = 1/2
    kwargs = {"cg": dict(iters=2, tol=1e-14), "neumann": dict(iters=3, tol=1e-14), "dense": dict(tol=1e-14),
              "identity": dict(tol=1e-14, alpha=0.5, diagnose=True)}[solver]
    u, info = {"cg": cg, "neumann": neumann, "dense": dense, "identity": identity}[solver](op(a, v), v, **kwargs)
    assert u["s"].shape == () and u["o"].shape == (1,)
    torch.testing.assert_close(u["s"], v["s"] / 2, rtol=1e-14, atol=0)
    torch.testing.assert_close(u["o"], v["o"] / 2, rtol=1e-14, atol=0)
    assert info.converged
