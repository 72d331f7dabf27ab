"""Safeguards of infnet.implicit.hypergrad: each failure mode is reported in ``info``."""

import math

import pytest
import torch

from infnet.compose import compose
from infnet.config import DENSE_MAX_PARAMS, ConfigError
from infnet.data import load_mlc
from infnet.implicit import HypergradError, hypergrad
from infnet.implicit.solvers import safeguard_alpha
from infnet.methods import MethodContext, build_method
from infnet.tasks import build_task
from infnet.train import run_training

DT = torch.float64


def _t(values, dtype=DT):
    return torch.tensor(values, dtype=dtype)


def saddle_inner(psi, th):
    """G = ½x₀² − ½x₁² + wᵀx: H = diag(1, −1), ∂²G/∂w∂x = I."""
    x = psi["x"]
    return 0.5 * x[0] ** 2 - 0.5 * x[1] ** 2 + th["w"] @ x


def linear_outer(psi, th):
    """F = 2x₀ + x₁, so ∂F/∂x = (2, 1)."""
    return 2 * psi["x"][0] + psi["x"][1]


def test_negative_curvature_later_iteration_returns_cg_iterate():
    grads, info = hypergrad(saddle_inner, linear_outer, {"x": _t([0.0, 0.0])}, {"w": _t([0.0, 0.0])}, solver="cg")
    assert info.negative_curvature and info.iterations == 1 and info.fallback is None and not info.converged
    torch.testing.assert_close(grads["w"], -_t([10 / 3, 5 / 3]), rtol=1e-14, atol=0)  # −u after one CG step


def test_negative_curvature_first_iteration_identity_on_concave_inner():
    def concave(psi, th):
        return -0.5 * (psi["x"] ** 2).sum() + th["w"] @ psi["x"] + torch.cos(psi["x"]).sum()

    grads, info = hypergrad(concave, linear_outer, {"x": _t([0.1, -0.2])}, {"w": _t([1.0, 2.0])}, solver="cg", alpha=0.5)
    assert info.negative_curvature and info.iterations == 0 and info.hvp_calls == 1
    assert info.fallback is not None and "negative curvature" in info.fallback and not info.converged
    torch.testing.assert_close(grads["w"], -0.5 * _t([2.0, 1.0]), rtol=1e-14, atol=0)
    assert info.as_metrics()["hypergrad/negative_curvature"] == 1.0


def quad_inner(psi, th):
    """G = ½ xᵀ diag(1, 4) x − wᵀx."""
    return 0.5 * (_t([1.0, 4.0]) * psi["x"] ** 2).sum() - th["w"] @ psi["x"]


def sq_outer(psi, th):
    return ((psi["x"] - 1.0) ** 2).sum()


QUAD_ARGS = (quad_inner, sq_outer, {"x": _t([0.5, 0.5])}, {"w": _t([0.5, 2.0])})


def test_neumann_divergence_falls_back_to_identity():
    grads, info = hypergrad(*QUAD_ARGS, solver="neumann", iters=50, alpha=0.7)  # |1 − 0.7·4| = 1.8
    assert info.diverged and not info.converged and 0 < info.iterations < 50
    assert "diverged" in info.fallback and "identity approximation (alpha=0.7)" in info.fallback
    torch.testing.assert_close(grads["w"], 0.7 * 2 * (_t([0.5, 0.5]) - 1.0), rtol=1e-14, atol=0)  # u = α ∂F/∂x
    good, ginfo = hypergrad(*QUAD_ARGS, solver="neumann", iters=60, alpha=0.45)  # |1 − 0.45·4| = 0.8
    assert not ginfo.diverged and ginfo.fallback is None and ginfo.converged
    lam = _t([1.0, 4.0])  # K = 60 terms: u = (1 − (1 − αλ)^{K+1}) / λ · ∂F/∂x
    torch.testing.assert_close(good["w"], 2 * (_t([0.5, 0.5]) - 1.0) * (1 - (1 - 0.45 * lam) ** 61) / lam, rtol=1e-12, atol=0)


def test_neumann_divergence_raise_and_zero():
    with pytest.raises(HypergradError, match="diverged"):
        hypergrad(*QUAD_ARGS, solver="neumann", iters=50, alpha=0.7, fallback="raise")
    grads, info = hypergrad(*QUAD_ARGS, solver="neumann", iters=50, alpha=0.7, fallback="zero")
    assert torch.equal(grads["w"], torch.zeros(2, dtype=DT)) and "zero gradient" in info.fallback


def singular_inner(psi, th):
    """The Hessian of |x|^1.5 is infinite at x = 0 while G, ∇G and ∂²G/∂w∂x stay finite.

    With w = (0, −2.5), x = (0, 1) is the exact minimiser (gradient descent stays there).
    """
    x = psi["x"]
    return 0.5 * (x**2).sum() + th["w"] @ x + (x.abs() ** 1.5).sum()


SINGULAR_ARGS = (singular_inner, sq_outer, {"x": _t([0.0, 1.0])}, {"w": _t([0.0, -2.5])})


@pytest.mark.parametrize("solver", ["cg", "dense"])
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_non_finite_solution_identity_fallback(solver, mode):
    grads, info = hypergrad(*SINGULAR_ARGS, solver=solver, hvp_mode=mode)
    assert info.fallback.startswith(f"non-finite {solver} solution") and "identity" in info.fallback
    assert not info.converged
    torch.testing.assert_close(grads["w"], -2 * (_t([0.0, 1.0]) - 1.0), rtol=0, atol=0)  # −I · ∂F/∂x
    assert torch.isfinite(grads["w"]).all()


def unit_inner(psi, th):
    """``singular_inner`` without its singular term: H = I exactly (same ∂²G/∂w∂x = I)."""
    x = psi["x"]
    return 0.5 * (x**2).sum() + th["w"] @ x


@pytest.mark.parametrize("damping", [0.0, 1.0, 10.0])
@pytest.mark.parametrize("solver", ["cg", "dense"])
def test_identity_fallback_is_the_damped_solve_with_the_hessian_replaced_by_identity(solver, damping):
    grads, info = hypergrad(*SINGULAR_ARGS, solver=solver, damping=damping)
    assert info.fallback == f"non-finite {solver} solution; identity approximation (alpha={1 / (1 + damping):g})"
    exact, exact_info = hypergrad(unit_inner, *SINGULAR_ARGS[1:], solver="dense", damping=damping)  # (I + ρI) u = ∂F/∂x
    assert exact_info.fallback is None and exact_info.residual <= 1e-15
    torch.testing.assert_close(grads["w"], exact["w"], rtol=1e-15, atol=0)
    assert float(grads["w"].norm()) == pytest.approx(2.0 / (1 + damping), rel=1e-15)  # ‖∂F/∂x‖ = 2: not ρ× too large


def test_identity_fallback_step_tends_to_the_damped_solution():
    """u = v/(1 + ρ) against the exact (H + ρI)⁻¹ v of an SPD H: relative gap ≤ ‖H − I‖/(λ_min + ρ) → 0,
    while the undamped step v is ≥ (λ_min + ρ)× too long."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=DT))
    eigs = _t([0.5, 1.0, 1.5, 2.0, 3.0])
    h, v = q @ torch.diag(eigs) @ q.T, torch.randn(5, generator=gen, dtype=DT)
    gaps = []
    for rho in (1.0, 10.0, 100.0, 1000.0):
        exact = torch.linalg.solve(h + rho * torch.eye(5, dtype=DT), v)
        step = safeguard_alpha(None, rho) * v
        gaps.append(float((step - exact).norm() / step.norm()))
        assert gaps[-1] <= float(torch.linalg.matrix_norm(h - torch.eye(5, dtype=DT), 2)) / (0.5 + rho) * (1 + 1e-12)
        assert float(v.norm() / exact.norm()) >= 0.5 + rho
    assert gaps[-1] < 1e-3 and all(b < a for a, b in zip(gaps, gaps[1:]))
    assert safeguard_alpha(0.3, 10.0) == 0.3  # a given alpha is kept


def test_negative_curvature_first_iteration_identity_is_damped():
    def concave(psi, th):  # H = −I − diag(cos x), below −1.9 I at x: still negative with ρ = 1
        return -0.5 * (psi["x"] ** 2).sum() + th["w"] @ psi["x"] + torch.cos(psi["x"]).sum()

    grads, info = hypergrad(concave, linear_outer, {"x": _t([0.1, -0.2])}, {"w": _t([1.0, 2.0])}, solver="cg", damping=1.0)
    assert info.negative_curvature and info.iterations == 0 and "negative curvature" in info.fallback
    torch.testing.assert_close(grads["w"], -_t([2.0, 1.0]) / 2, rtol=1e-15, atol=0)  # u = ∂F/∂x / (1 + ρ)


def test_non_finite_solution_zero_and_raise():
    grads, info = hypergrad(*SINGULAR_ARGS, solver="cg", fallback="zero")
    assert torch.equal(grads["w"], torch.zeros(2, dtype=DT))
    assert info.fallback == "non-finite cg solution; zero gradient returned"
    with pytest.raises(HypergradError, match="non-finite cg solution"):
        hypergrad(*SINGULAR_ARGS, solver="cg", fallback="raise")


def test_non_finite_gradient_where_identity_cannot_help_returns_reported_zeros():
    def outer_sqrt(psi, th):  # ∂F/∂θ = ∞ at θ₀ = 0
        return sq_outer(psi, th) + torch.sqrt(th["w"][0].abs())

    args = (quad_inner, outer_sqrt, {"x": _t([0.5, 0.5])}, {"w": _t([0.0, 2.0])})
    grads, info = hypergrad(*args, solver="cg")
    assert torch.equal(grads["w"], torch.zeros(2, dtype=DT))
    assert info.fallback == "non-finite cg hypergradient; identity fallback also non-finite; zero gradient returned"
    with pytest.raises(HypergradError, match="non-finite cg hypergradient"):
        hypergrad(*args, solver="cg", fallback="raise")


def test_non_finite_unrolled_gradient_falls_back():
    grads, info = hypergrad(*SINGULAR_ARGS, solver="unrolled", iters=3, alpha=0.1)
    assert info.fallback.startswith("non-finite unrolled hypergradient") and "identity" in info.fallback
    torch.testing.assert_close(grads["w"], -0.1 * 2 * (_t([0.0, 1.0]) - 1.0), rtol=0, atol=0)  # u = α ∂F/∂x


@pytest.mark.parametrize("solver", ["cg", "neumann", "dense", "identity", "unrolled"])
def test_float32(solver):
    args32 = (quad_inner_any, sq_outer, {"x": _t([0.5, 0.5], torch.float32)}, {"w": _t([0.5, 2.0], torch.float32)})
    grads, info = hypergrad(*args32, solver=solver, iters=60, alpha=0.45 if solver != "identity" else None)
    assert grads["w"].dtype == torch.float32 and info.fallback is None
    # dF/dw = u with ∂F/∂x = 2(x − 1) and H = diag(1, 4); x = (0.5, 0.5) is the inner optimum
    expected = {
        "identity": 2 * (_t([0.5, 0.5]) - 1.0),  # α = 1
        "unrolled": 2 * (_t([0.5, 0.5]) - 1.0) * (1 - (1 - 0.45 * _t([1.0, 4.0])) ** 60) / _t([1.0, 4.0]),
    }.get(solver, 2 * (_t([0.5, 0.5]) - 1.0) / _t([1.0, 4.0]))
    torch.testing.assert_close(grads["w"].double(), expected, rtol=1e-5, atol=0)


def quad_inner_any(psi, th):
    """``quad_inner`` in the dtype of ψ."""
    return 0.5 * (torch.tensor([1.0, 4.0], dtype=psi["x"].dtype) * psi["x"] ** 2).sum() - th["w"] @ psi["x"]


@pytest.mark.parametrize("solver", ["cg", "neumann", "dense", "identity", "unrolled"])
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_zero_dim_parameters(solver, mode):
    """G = ½ e^t p² − sin(t) p ⇒ p* = sin(t) e^{−t}; F = p² + t ⇒ dF/dt = 2p* dp*/dt + 1."""
    t = 0.3
    p_star = math.sin(t) * math.exp(-t)
    expected = 2 * p_star * (math.cos(t) - math.sin(t)) * math.exp(-t) + 1

    def inner(psi, th):
        return 0.5 * torch.exp(th["t"]) * psi["p"] ** 2 - torch.sin(th["t"]) * psi["p"]

    def outer(psi, th):
        return psi["p"] ** 2 + th["t"]

    alpha = math.exp(-t)  # identity is exact: H = e^t
    grads, info = hypergrad(
        inner, outer, {"p": _t(p_star)}, {"t": _t(t)}, solver=solver, iters=200 if solver == "unrolled" else 5,
        alpha=alpha if solver == "identity" else None, hvp_mode=mode,
    )
    assert grads["t"].shape == () and info.fallback is None
    assert float(grads["t"]) == pytest.approx(expected, rel=1e-12)


def test_detached_outer_parameter_is_reported_not_hidden():
    def inner(psi, th):  # θ['b'] is (wrongly) detached: no gradient can flow to it
        return ((psi["x"] - th["a"] - th["b"].detach()) ** 2).sum()

    grads, info = hypergrad(inner, sq_outer, {"x": _t([1.0, 2.0])}, {"a": _t([1.0, 2.0]), "b": _t([0.0, 0.0])})
    assert info.unused_outer == ("b",) and torch.equal(grads["b"], torch.zeros(2, dtype=DT))
    torch.testing.assert_close(grads["a"], 2 * (_t([1.0, 2.0]) - 1.0), rtol=1e-12, atol=0)
    assert info.as_metrics()["hypergrad/unused_outer"] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        (dict(solver="lu"), ValueError),
        (dict(fallback="ignore"), ValueError),
        (dict(hvp_mode="sideways"), ValueError),
        (dict(damping=-1.0), ValueError),
        (dict(iters=-1), ValueError),
        (dict(alpha=0.0), ValueError),
    ],
)
def test_invalid_arguments(kwargs, error):
    with pytest.raises(error):
        hypergrad(*QUAD_ARGS, **kwargs)


def test_invalid_params_and_losses():
    with pytest.raises(TypeError, match="floating-point"):
        hypergrad(quad_inner, sq_outer, {"x": torch.tensor([1, 2])}, {"w": _t([0.5, 2.0])})
    with pytest.raises(TypeError, match="non-empty"):
        hypergrad(quad_inner, sq_outer, {"x": _t([0.5, 0.5])}, {})
    with pytest.raises(ValueError, match="outer_loss must return a scalar"):
        hypergrad(quad_inner, lambda p, t: p["x"], {"x": _t([0.5, 0.5])}, {"w": _t([0.5, 2.0])})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("solver", ["cg", "neumann", "dense", "identity", "unrolled"])
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_cuda_matches_cpu(solver, mode):
    def inner(psi, th):
        w = torch.ones(2, dtype=psi["x"].dtype, device=psi["x"].device)
        return 0.5 * ((w + th["s"] ** 2) * psi["x"] ** 2).sum() - th["w"] @ psi["x"]

    def run(device):
        args = (inner, sq_outer, {"x": _t([0.5, 0.5]).to(device)}, {"w": _t([0.5, 2.0]).to(device), "s": _t(0.3).to(device)})
        return hypergrad(*args, solver=solver, iters=30, alpha=0.5 if solver != "identity" else None, hvp_mode=mode)

    cpu, _ = run("cpu")
    gpu, info = run("cuda")
    assert info.fallback is None
    for k in cpu:
        assert gpu[k].device.type == "cuda"
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("solver", ["cg", "neumann", "identity", "dense", "unrolled"])
def test_outer_value_is_f_at_the_given_psi_or_the_last_unrolled_iterate(solver):
    inner, outer, psi, theta = QUAD_ARGS
    _, info = hypergrad(inner, outer, psi, theta, solver=solver, iters=3, alpha=0.1)
    if solver != "unrolled":
        assert info.outer_value == pytest.approx(float(outer(psi, theta)), rel=1e-14)  # (0.5 − 1)² · 2 = 0.5
        return
    x = psi["x"].clone()  # three gradient steps on G from ψ₀: x ← x − 0.1 (diag(1, 4) x − w)
    for _ in range(3):
        x = x - 0.1 * (_t([1.0, 4.0]) * x - theta["w"])
    assert info.outer_value == pytest.approx(float(((x - 1.0) ** 2).sum()), rel=1e-12)


DENSE_DATA = load_mlc({"name": "synthetic_mlc", "n_train": 40, "n_dev": 20, "n_test": 20, "n_features": 16, "n_labels": 8,
                       "cache": False})


def _dense_overrides(implicit_params: str, hidden: int, solver: str = "dense") -> list[str]:
    """The implicit method with ``solver`` on a 16 -> hidden -> 8 network."""
    return ["method=implicit", f"method.solver={solver}", f"method.implicit_params={implicit_params}", f"model.hidden=[{hidden}]"]


def _build(overrides: list[str]):
    """The implicit method of ``overrides`` on ``DENSE_DATA`` (built, not trained)."""
    cfg = compose(overrides)
    task = build_task(DENSE_DATA, cfg.model)
    return build_method(MethodContext(task, cfg.model, cfg.method, torch.device("cpu"), None, DENSE_DATA.train))


def _n_psi(implicit_params: str, hidden: int) -> int:
    """ψ of the 16 -> hidden -> 8 network: its head, or all of it."""
    head = (hidden + 1) * 8
    return head if implicit_params == "head" else (16 + 1) * hidden + head


@pytest.mark.parametrize(("implicit_params", "hidden"), [("head", DENSE_MAX_PARAMS // 8 - 1), ("all", 150), ("head", 150)])
def test_dense_solver_is_built_up_to_the_stated_size(implicit_params, hidden):
    assert _n_psi(implicit_params, hidden) <= DENSE_MAX_PARAMS
    method = _build(_dense_overrides(implicit_params, hidden))
    assert sum(p.numel() for p in method.implicit_module().parameters()) == _n_psi(implicit_params, hidden)


@pytest.mark.parametrize(("implicit_params", "hidden"), [("head", DENSE_MAX_PARAMS // 8), ("all", 200)])
def test_dense_solver_above_the_stated_size_is_refused_before_training(implicit_params, hidden):
    n = _n_psi(implicit_params, hidden)
    assert n > DENSE_MAX_PARAMS
    epochs, caches = [], []
    cfg = compose([*_dense_overrides(implicit_params, hidden), "trainer.pretrain_cache=true"])
    with pytest.raises(ConfigError) as error:
        run_training(cfg, data=DENSE_DATA, verbose=False, on_epoch=lambda *a: epochs.append(a),
                     pretrain_cache=lambda *a: caches.append(a))
    message = str(error.value)
    for part in ("method.solver=dense", f"method.implicit_params={implicit_params}", f"{n} parameters",
                 str(DENSE_MAX_PARAMS), "method.solver=cg"):
        assert part in message
    assert ("method.implicit_params=head (" in message) == (implicit_params == "all")
    assert epochs == [] and caches == []
    assert _build(_dense_overrides(implicit_params, hidden, solver="cg")).hp.solver == "cg"  # the suggested solver builds
