"""Unit behaviour of each method on a tiny synthetic problem (float32, CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infnet.compose import compose
from infnet.data import load_mlc
from infnet.methods import MethodContext, build_method
from infnet.methods.base import Method, clip_grad_norm
from infnet.tasks import build_task

DATA = load_mlc({"name": "synthetic_mlc", "n_train": 300, "n_dev": 100, "n_test": 100, "cache": False})


def _method(name: str, *overrides: str) -> Method:
    cfg = compose([f"method={name}", "model.hidden=[32]", *overrides])
    rng = np.random.default_rng(0)

    def sample() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        idx = rng.choice(len(DATA.train), 16, replace=False)
        return (*DATA.train.batch(idx), idx)

    torch.manual_seed(0)
    method = build_method(MethodContext(build_task(DATA, cfg.model), cfg.model, cfg.method, torch.device("cpu"), sample, DATA.train))
    for _ in range(20):  # a little pretraining
        method.ce_step(*sample()[:2])
    if method.uses_energy:
        method.begin_main()
    return method


def _steps(method: Method, n: int) -> None:
    rng = np.random.default_rng(1)
    for _ in range(n):
        idx = rng.choice(len(DATA.train), 16, replace=False)
        method.train_step(*DATA.train.batch(idx), idx)


@pytest.mark.parametrize("name", ["ce", "spen", "tu_gimpel", "seal", "implicit"])
def test_state_round_trip_reproduces_predictions(name: str) -> None:
    method = _method(name, "method.inner_steps=2") if name == "implicit" else _method(name)
    _steps(method, 4)
    method.end_epoch()
    x, _ = DATA.dev.batch(np.arange(50))
    before, state = method.predict(x), method.state_dict()
    _steps(method, 4)
    method.end_epoch()
    assert not torch.allclose(method.predict(x), before)
    method.load_state_dict(state)
    assert torch.allclose(method.predict(x), before)


def test_energy_steps_do_not_leak_gradients_into_the_energy() -> None:
    method = _method("implicit", "method.freeze_energy=true")
    theta = [p.detach().clone() for p in method.energy.parameters()]
    _steps(method, 5)
    assert all(p.grad is None for p in method.energy.parameters())
    assert all(torch.equal(a, b) for a, b in zip(theta, method.energy.parameters()))


def test_implicit_updates_theta_every_t_steps_and_logs_the_solver() -> None:
    method = _method("implicit", "method.inner_steps=3", "method.solver=cg", "method.iters=4")
    theta = [p.detach().clone() for p in method.energy.parameters()]
    rng = np.random.default_rng(2)
    logged = []
    for _ in range(6):
        idx = rng.choice(len(DATA.train), 16, replace=False)
        logged.append(method.train_step(*DATA.train.batch(idx), idx))
    assert [("solver/iterations" in s) for s in logged] == [False, False, True, False, False, True]
    assert 1 <= logged[2]["solver/iterations"] <= 4 and "solver/residual" in logged[2]
    assert any(not torch.equal(a, b) for a, b in zip(theta, method.energy.parameters()))


def test_tu_gimpel_retuning_lowers_the_energy_of_predictions() -> None:
    method = _method("tu_gimpel", "method.retune_steps=30", "method.retune_lr=1e-2")
    _steps(method, 5)
    x, _ = DATA.train.batch(np.arange(64))
    h = method.feats(x)
    with torch.no_grad():
        before = method.energy(h, method.infnet.probs(x)).mean()
    method.end_epoch()
    with torch.no_grad():
        after = method.energy(h, method.predict(x)).mean()
    assert after < before


@pytest.mark.parametrize("loss_net", ["nce", "margin"])
def test_seal_loss_net_objectives_update_the_energy(loss_net: str) -> None:
    method = _method("seal", f"method.loss_net={loss_net}")
    theta = [p.detach().clone() for p in method.energy.parameters()]
    _steps(method, 3)
    assert any(not torch.equal(a, b) for a, b in zip(theta, method.energy.parameters()))


def test_spen_cost_augmented_inference_increases_the_cost() -> None:
    method = _method("spen")
    x, y = DATA.train.batch(np.arange(32))
    h = method.feats(x)
    plain, augmented = method.infer(x, h), method.infer(x, h, y)
    assert ((augmented - y) ** 2).sum() > ((plain - y) ** 2).sum()


@pytest.mark.parametrize("lr_label", [None, 1e-2])
def test_energy_optimizer_gives_the_label_term_its_own_learning_rate(lr_label: float | None) -> None:
    method = _method("implicit", "method.lr_energy=1e-4", f"method.lr_label={'null' if lr_label is None else lr_label}")
    local = {id(p) for p in method.energy.local.parameters()}
    rest = {id(p) for p in method.energy.parameters()} - local
    groups = method.opt_energy.param_groups
    assert [{id(p) for p in g["params"]} for g in groups] == [local, rest] and rest
    assert [g["lr"] for g in groups] == [1e-4, 1e-4 if lr_label is None else lr_label]


@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clipping active / inactive
def test_clip_grad_norm_matches_torch(max_norm: float) -> None:
    torch.manual_seed(0)
    ours, ref = [torch.nn.Parameter(torch.randn(s)) for s in ((3, 4), (5,), ())], None
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, ref):
        a.grad = torch.randn_like(a)
        b.grad = a.grad.clone()
    ours[1].grad = ref[1].grad = None  # a parameter without a gradient is skipped
    total = clip_grad_norm(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert torch.allclose(total, expected)
    for a, b in zip(ours, ref):
        assert (a.grad is None and b.grad is None) or torch.allclose(a.grad, b.grad)
    assert (total > max_norm) == (max_norm == 0.5)
