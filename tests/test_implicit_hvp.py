"""HVP and mixed products of infnet.implicit.hvp against dense autograd Hessians/Jacobians."""

import pytest
import torch
import torch.nn.functional as fn

from infnet.implicit import HVPOperator, tree

DT = torch.float64
PSI_SHAPES = {"W": (4, 3), "b": (4,), "s": (), "one": (1,)}
THETA_SHAPES = {"A": (3, 3), "c": (), "d": (1,), "unused": (2,)}


def _sizes(shapes):
    return [int(torch.Size(s).numel()) for s in shapes.values()]


def _split(vec, shapes):
    return {k: t.reshape(s) for (k, s), t in zip(shapes.items(), torch.split(vec, _sizes(shapes)))}


def energy(psi, theta, x):
    """Smooth softplus-MLP energy coupling every ψ entry with θ (except θ['unused'])."""
    h = fn.softplus(x @ theta["A"] @ psi["W"].T + psi["b"] * theta["c"])
    out = fn.softplus(h.sum(1) * psi["s"] + theta["d"] * psi["one"]).sum()
    return out + 0.5 * (psi["s"] * theta["c"]) ** 2 + (psi["W"] ** 2).sum() * torch.tanh(theta["d"]).sum()


@pytest.fixture()
def problem():
    gen = torch.Generator().manual_seed(0)
    psi = {k: torch.randn(s, generator=gen, dtype=DT) for k, s in PSI_SHAPES.items()}
    theta = {k: torch.randn(s, generator=gen, dtype=DT) for k, s in THETA_SHAPES.items()}
    x = torch.randn(6, 3, generator=gen, dtype=DT)
    return psi, theta, x


def _dense(psi, theta, x):
    """Dense ∂²G/∂ψ² (n×n) and ∂²G/∂θ∂ψ (m×n) from torch.autograd.functional."""
    p0, t0 = tree.flatten(psi), tree.flatten(theta)

    def g(pv, tv):
        return energy(_split(pv, PSI_SHAPES), _split(tv, THETA_SHAPES), x)

    hess = torch.autograd.functional.hessian(lambda pv: g(pv, t0), p0)
    grad_psi = lambda tv: torch.autograd.functional.jacobian(lambda pv: g(pv, tv), p0, create_graph=True)  # noqa: E731
    mixed = torch.autograd.functional.jacobian(grad_psi, t0)  # (n, m): d(∇ψ G)/dθ
    return hess, mixed.T


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hvp_and_mixed_match_dense(problem, mode):
    psi, theta, x = problem
    hess, mixed = _dense(psi, theta, x)
    assert mixed.abs().sum() > 0 and hess.abs().sum() > 0
    op = HVPOperator(lambda p, t: energy(p, t, x), tree.detached(psi, True), tree.detached(theta, True), mode=mode)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = {k: torch.randn(s, generator=gen, dtype=DT) for k, s in PSI_SHAPES.items()}
        hv, mv = op.hvp(v), op.mixed(v)
        assert {k: t.shape for k, t in hv.items()} == {k: torch.Size(s) for k, s in PSI_SHAPES.items()}
        assert {k: t.shape for k, t in mv.items()} == {k: torch.Size(s) for k, s in THETA_SHAPES.items()}
        torch.testing.assert_close(tree.flatten(hv), hess @ tree.flatten(v), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(tree.flatten(mv), mixed @ tree.flatten(v), rtol=1e-12, atol=1e-12)
        assert torch.equal(mv["unused"], torch.zeros(2, dtype=DT))
    assert op.calls == 3
    assert op.independent_outer == {"unused"}


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_damped_matvec_and_scalar_params(mode):
    """0-dim ψ and θ: G = exp(θ ψ) + ψ⁴ has H = θ² e^{θψ} + 12ψ², mixed = (1 + θψ) e^{θψ}."""
    psi, theta = {"p": torch.tensor(0.7, dtype=DT)}, {"t": torch.tensor(-0.4, dtype=DT)}
    op = HVPOperator(
        lambda p, t: torch.exp(t["t"] * p["p"]) + p["p"] ** 4,
        tree.detached(psi, True), tree.detached(theta, True), mode=mode, damping=0.25,
    )
    p, t = psi["p"], theta["t"]
    h = t**2 * torch.exp(t * p) + 12 * p**2
    v = {"p": torch.tensor(1.5, dtype=DT)}
    out = op.matvec(v)
    assert out["p"].shape == ()
    torch.testing.assert_close(out["p"], (h + 0.25) * 1.5, rtol=1e-13, atol=0)
    torch.testing.assert_close(op.mixed(v)["t"], (1 + t * p) * torch.exp(t * p) * 1.5, rtol=1e-13, atol=0)


def test_reverse_mode_reuses_one_graph():
    """Reverse mode calls the inner loss once, however many products are taken."""
    calls = []

    def g(p, t):
        calls.append(1)
        return (torch.cosh(p["x"]) * t["y"]).sum()

    op = HVPOperator(g, {"x": torch.ones(3, dtype=DT, requires_grad=True)}, {"y": torch.ones(3, dtype=DT, requires_grad=True)})
    for _ in range(5):
        op.hvp({"x": torch.ones(3, dtype=DT)})
    op.mixed({"x": torch.ones(3, dtype=DT)})
    assert len(calls) == 1 and op.calls == 5
    torch.testing.assert_close(op.hvp({"x": torch.ones(3, dtype=DT)})["x"], torch.cosh(torch.ones(3, dtype=DT)))
