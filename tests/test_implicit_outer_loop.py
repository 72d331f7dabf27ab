"""The implicit method's outer loop is neither inert nor wrong.

- Its own hypergradient (``Implicit.bilevel_problem`` -> ``hypergrad``) equals central finite
  differences of F(ψ*(θ)), with G and F written in the test from their definitions and ψ* (the
  inference network's head) re-solved to machine precision, on a tiny multi-label problem in float64 — with the learned pairwise and MLP
  label terms, and with the energy evaluated at perturbed inputs (``energy_noise``).
- After some outer steps θ has measurably moved (and the frozen control's has not), the held-out
  outer loss is below the frozen control's, and the two predict differently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infnet.compose import compose
from infnet.data import load_mlc
from infnet.data.outer import hold_out
from torch.func import functional_call

from infnet.implicit import tree
from infnet.losses import bce_sum, soft_f1_loss
from infnet.methods import MethodContext, build_method
from infnet.methods.implicit import Implicit
from infnet.tasks import build_task

DT = torch.float64
DATA = load_mlc({"name": "synthetic_mlc", "n_train": 120, "n_dev": 60, "n_test": 60, "n_features": 12, "n_labels": 8, "cache": False})


def _tiny_method(*overrides: str) -> Implicit:
    """An implicit method on 12 features -> 4 hidden units -> 8 labels, in float64, after pretraining,
    with every θ block at a non-trivial value (so each one enters the hypergradient)."""
    cfg = compose(["method=implicit", "model.hidden=[4]", "model.energy.label_hidden=3", "model.energy.pairwise=true",
                   "method.implicit_params=head", "method.solver=dense", "method.damping=0.0", *overrides])
    torch.manual_seed(0)
    method = build_method(MethodContext(build_task(DATA, cfg.model), cfg.model, cfg.method, torch.device("cpu"), None, DATA.train))
    for module in method.modules().values():
        module.double()
    x, y = (t.double() for t in DATA.train.batch(np.arange(len(DATA.train))))
    for _ in range(30):
        method.ce_step(x, y)
    method.begin_main()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in method.energy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=DT))
    return method


def _newton(inner, psi: dict[str, torch.Tensor], theta: dict[str, torch.Tensor], iters: int = 50) -> dict[str, torch.Tensor]:
    """argmin_ψ G(ψ, θ): L-BFGS (line search) from ``psi``, then Newton's method to machine precision."""
    v = tree.flatten(psi).clone().requires_grad_(True)

    def g(vec: torch.Tensor) -> torch.Tensor:
        return inner(tree.unflatten(vec, psi), theta)

    lbfgs = torch.optim.LBFGS([v], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = g(v)
        loss.backward()
        return loss

    lbfgs.step(closure)
    v = v.detach()
    for _ in range(iters):
        grad = torch.autograd.functional.jacobian(g, v)
        if grad.norm() < 1e-13:
            break
        hess = torch.autograd.functional.hessian(g, v)
        v = v - torch.linalg.solve(hess, grad)
    assert torch.linalg.eigvalsh(torch.autograd.functional.hessian(g, v)).min() > 0  # a strict minimum
    assert torch.autograd.functional.jacobian(g, v).norm() < 1e-10
    return tree.unflatten(v, psi)


@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_method_hypergradient_matches_finite_differences_of_resolved_inner_problem(noise: float) -> None:
    method = _tiny_method(f"method.energy_noise={noise}")
    method.infnet.eval()
    x = DATA.train.batch(np.arange(40))[0].double()
    x_out, y_out = (t.double() for t in DATA.train.batch(np.arange(60, 100)))
    torch.manual_seed(1)
    # soft targets in (0.2, 0.8) and hidden features without a dead unit: BCE is coercive in the head, so
    # ψ*(θ) is a finite, strict minimum (with the gold 0/1 labels the tiny problem may be separable)
    y = 0.2 + 0.6 * torch.rand(40, DATA.n_labels, dtype=DT)
    assert (method.infnet.features(x) > 0).any(0).all()
    h = method.feats(x)
    x_e, h_e = method.energy_batch(x, h)
    assert (x_e is x) == (noise == 0.0)
    head, energy, lam = method.infnet.head, method.energy, method.hp.lam
    with torch.no_grad():
        f, f_e, f_out = (method.infnet.features(t) for t in (x, x_e, x_out))

    # G and F written here from their definitions, independently of Implicit.bilevel_problem
    def inner(psi: dict[str, torch.Tensor], theta: dict[str, torch.Tensor]) -> torch.Tensor:
        y_e = torch.sigmoid(functional_call(head, psi, (f_e,)))
        return functional_call(energy, theta, (h_e, y_e)).mean() + lam * bce_sum(functional_call(head, psi, (f,)), y)

    def outer(psi: dict[str, torch.Tensor]) -> torch.Tensor:
        return soft_f1_loss(torch.sigmoid(functional_call(head, psi, (f_out,))), y_out)

    theta0 = {k: p.detach() for k, p in energy.named_parameters()}
    psi_star = _newton(inner, {k: p.detach() for k, p in head.named_parameters()}, theta0)
    with torch.no_grad():  # put the inference network's head at ψ*(θ₀), where the IFT holds
        for k, p in head.named_parameters():
            p.copy_(psi_star[k])
    grads, info = method.hypergradient(x, y, h, x_out, y_out, x_e, h_e)
    assert info.fallback is None and info.residual < 1e-10
    assert info.outer_value == pytest.approx(float(outer(psi_star)), rel=1e-12)
    assert {k for k, g in grads.items() if g.abs().sum() > 0} >= {"local.weight", "structure.0.weight", "label_out.weight"}

    def value(theta: dict[str, torch.Tensor]) -> float:
        return float(outer(_newton(inner, psi_star, theta)))

    gen = torch.Generator().manual_seed(5)
    eps = 1e-5
    for _ in range(3):
        d = {k: torch.randn(t.shape, generator=gen, dtype=DT) for k, t in theta0.items()}
        fd = (value(tree.axpy(eps, d, theta0)) - value(tree.axpy(-eps, d, theta0))) / (2 * eps)
        ift = float(tree.dot(grads, d))
        assert abs(fd) > 1e-4
        assert ift == pytest.approx(fd, rel=1e-5, abs=1e-8)


def _trained(outer_steps_allowed: bool) -> tuple[Implicit, tuple[torch.Tensor, torch.Tensor]]:
    """The testbed-like learned energy (pairwise label term, held-out outer loss) after 60 inner steps
    with T=2, or its frozen control from the same start; returns it and the held-out split as tensors."""
    cfg = compose(["method=implicit", "model.hidden=[32]", "model.energy.pairwise=true", "model.energy.global_scale=0.0",
                   "method.inner_steps=2", "method.lr_label=0.05", "method.energy_noise=0.5", "method.outer_data=heldout",
                   f"method.freeze_energy={str(not outer_steps_allowed).lower()}"])
    data, outer = hold_out(DATA, 0.25, seed=0)
    rng_in, rng_out = np.random.default_rng(0), np.random.default_rng(1)

    def sample(split, rng):  # noqa: ANN001, ANN202 - a batch sampler over split
        def draw() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
            idx = rng.choice(len(split), 16, replace=False)
            return (*split.batch(idx), idx)
        return draw

    torch.manual_seed(0)
    ctx = MethodContext(build_task(data, cfg.model), cfg.model, cfg.method, torch.device("cpu"),
                        sample(data.train, rng_in), data.train, sample(outer, rng_out))
    method = build_method(ctx)
    x_all, y_all = data.train.batch(np.arange(len(data.train)))
    for _ in range(100):
        method.ce_step(x_all, y_all)
    method.begin_main()
    for _ in range(60):
        method.train_step(*ctx.sample_train_batch())
    return method, outer.batch(np.arange(len(outer)))


def test_outer_steps_move_theta_and_lower_the_heldout_outer_loss_below_the_frozen_control() -> None:
    learned, (x_out, y_out) = _trained(True)
    frozen, _ = _trained(False)
    trace = learned.end_epoch()
    assert trace["outer/steps"] == 30 and "outer/loss_after" in trace
    assert frozen.end_epoch()["outer/steps"] == 0
    moved, still = learned.theta_change(), frozen.theta_change()
    assert moved["energy/rel_change_label"] > 0.05 and moved["energy/rel_change_local"] > 0
    assert still == {"energy/rel_change_local": 0.0, "energy/rel_change_label": 0.0}
    assert learned.outer_value(x_out, y_out) < frozen.outer_value(x_out, y_out)
    assert (learned.predict(x_out) - frozen.predict(x_out)).abs().max() > 1e-3


def test_hold_out_is_seeded_disjoint_and_rejects_empty_sides() -> None:
    from infnet.data.errors import DataConfigError

    reduced, outer = hold_out(DATA, 0.25, seed=4)
    again, outer_again = hold_out(DATA, 0.25, seed=4)
    other, _ = hold_out(DATA, 0.25, seed=5)
    assert (len(reduced.train), len(outer)) == (90, 30)
    np.testing.assert_array_equal(outer.labels, outer_again.labels)
    rows = {r.tobytes() for r in DATA.train.features.dense().numpy()}
    inner = {r.tobytes() for r in reduced.train.features.dense().numpy()}
    held = {r.tobytes() for r in outer.features.dense().numpy()}
    assert inner | held == rows and not inner & held
    assert not np.array_equal(reduced.train.labels, other.train.labels)
    assert hold_out(DATA, 0.0, seed=0) == (DATA, None)
    for bad in (1.0, 0.001, -0.2):
        with pytest.raises(DataConfigError, match="outer_fraction"):
            hold_out(DATA, bad, seed=0)


def test_energy_on_unlabeled_inputs_reads_the_unlabeled_split_and_needs_one() -> None:
    from infnet.config import ConfigError
    from infnet.train import run_training

    data = load_mlc({"name": "synthetic_mlc", "n_train": 40, "n_dev": 20, "n_test": 20, "n_features": 12, "n_labels": 8,
                     "n_unlabeled": 30, "cache": False})
    cfg_overrides = ["method=implicit", "model.hidden=[8]", "method.energy_data=unlabeled", "trainer.max_epochs=3",
                     "method.pretrain_epochs=1", "trainer.batch_size=8", "trainer.device=cpu"]
    cfg = compose(cfg_overrides)
    drawn = []
    unlabeled = data.unlabeled.features.dense()

    def sample() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        idx = np.arange(8)
        drawn.append(idx)
        return (*data.unlabeled.batch(idx), idx)

    method = build_method(MethodContext(build_task(data, cfg.model), cfg.model, cfg.method, torch.device("cpu"), None,
                                        data.train, None, sample))
    method.begin_main()
    x, _ = data.train.batch(np.arange(8))
    x_e, h_e = method.energy_batch(x, method.feats(x))
    assert torch.equal(x_e, unlabeled[:8]) and len(drawn) == 1 and h_e.shape == (8, 8)
    result = run_training(cfg, data=data, verbose=False)
    assert result["n_unlabeled"] == 30
    with pytest.raises(ConfigError, match="n_unlabeled"):
        run_training(cfg, data=DATA, verbose=False)
    auto = compose([*(o for o in cfg_overrides if "energy_data" not in o), "method.energy_data=auto"])
    timeless = lambda r: {k: v for k, v in r.items() if k != "train_seconds"}  # noqa: E731
    assert timeless(run_training(auto, data=data, verbose=False)) == timeless(result)  # auto: the unlabeled inputs where there are some
    assert run_training(auto, data=DATA, verbose=False)["n_unlabeled"] == 0  # and the train inputs where there are none
