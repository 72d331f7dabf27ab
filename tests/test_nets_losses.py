"""Energy sign/shape conventions, the loss properties, and gradient-based inference vs closed form."""

import torch

from infnet.inference import mirror_descent
from infnet.losses import margin_rescaled_hinge, nce_ranking_loss, soft_f1_loss, squared_l2_cost
from infnet.nets import InferenceNet, MLCEnergy


def _energy(depth: int = 1) -> MLCEnergy:
    torch.manual_seed(0)
    return MLCEnergy(feature_dim=6, n_labels=5, label_hidden=4, depth=depth).double()


def test_local_energy_from_head_prefers_the_classifier_decision() -> None:
    net = InferenceNet(8, [6], 5).double()
    e = _energy()
    e.init_local_from(net.head)
    x = torch.randn(4, 8, dtype=torch.float64)
    h, logits = net.features(x), net(x)
    y = torch.rand(4, 5, dtype=torch.float64)
    assert torch.allclose(e.local_energy(h, y), -(y * logits).sum(-1))
    decision = (logits > 0).double()
    flipped = 1 - decision
    assert torch.all(e.local_energy(h, decision) < e.local_energy(h, flipped))


def test_energy_shapes_and_label_term_capacity() -> None:
    for depth in (1, 3):
        e = _energy(depth)
        h, y = torch.randn(7, 6, dtype=torch.float64), torch.rand(7, 5, dtype=torch.float64)
        assert e(h, y).shape == (7,)
        assert len(e.label_layers) == depth
        assert torch.allclose(e(h, y), e.local_energy(h, y) + e.global_energy(h, y))


def test_label_term_starts_at_zero_but_is_not_inert() -> None:
    """c₂ = 0 at initialisation (energy = local term), yet c₂ receives O(1) gradients, and once c₂ is
    O(1) the label term's y-gradient is comparable to the local term's (earlier SPEN initialisations
    left it ~3e-4 of the local term's)."""
    e = _energy()
    h, y = torch.randn(64, 6, dtype=torch.float64), torch.rand(64, 5, dtype=torch.float64).requires_grad_(True)
    assert torch.equal(e.global_energy(h, y), torch.zeros(64, dtype=torch.float64))
    (g_c2,) = torch.autograd.grad(e(h, y).mean(), e.label_out.weight)
    assert g_c2.abs().min() > 0.1
    with torch.no_grad():
        e.label_out.weight.copy_(torch.nn.functional.normalize(torch.randn_like(e.label_out.weight), dim=1))
    (g_local,) = torch.autograd.grad(e.local_energy(h, y).sum(), y)
    (g_global,) = torch.autograd.grad(e.global_energy(h, y).sum(), y)
    assert 0.05 < float(g_global.norm() / g_local.norm()) < 20


def test_margin_rescaled_hinge_zero_iff_margin_satisfied() -> None:
    e_gold = torch.tensor([0.0, 0.0, 1.0])
    e_pred = torch.tensor([3.0, 0.5, 1.0])
    cost = torch.tensor([2.0, 2.0, 0.0])
    per = (cost - e_pred + e_gold).clamp_min(0)
    assert torch.equal(per > 0, torch.tensor([False, True, False]))
    assert margin_rescaled_hinge(e_pred, e_gold, cost) == per.mean()
    assert margin_rescaled_hinge(e_pred, e_gold, cost, clip=False) == (cost - e_pred + e_gold).mean()


def test_squared_l2_cost_and_soft_f1() -> None:
    y = torch.tensor([[1.0, 0.0, 1.0]])
    assert squared_l2_cost(torch.tensor([[0.5, 0.5, 1.0]]), y).item() == 0.5
    assert soft_f1_loss(y, y).item() < 1e-5
    assert abs(soft_f1_loss(1 - y, y).item() - 1.0) < 1e-5


def test_nce_ranking_prefers_low_gold_energy() -> None:
    zeros = torch.zeros(2, 3)
    good = nce_ranking_loss(torch.tensor([-5.0, -5.0]), zeros, torch.zeros(2), zeros)
    bad = nce_ranking_loss(torch.tensor([5.0, 5.0]), zeros, torch.zeros(2), zeros)
    assert good < bad


def test_mirror_descent_reaches_closed_form_without_label_term() -> None:
    """With E = -yᵀs and entropy weight τ, the minimiser of E − τH is σ(s/τ) (exact marginals)."""
    torch.manual_seed(1)
    s = torch.randn(3, 5, dtype=torch.float64)
    for tau in (0.5, 1.0, 2.0):
        res = mirror_descent(lambda y: -(y * s).sum(-1), torch.zeros_like(s), steps=300, lr=0.5 / tau, entropy=tau)
        assert torch.allclose(res.y, torch.sigmoid(s / tau), atol=1e-8)
        assert res.grad_norm_last < 1e-8 < res.grad_norm_first


def test_mirror_descent_lowers_the_full_energy() -> None:
    e = _energy()
    h = torch.randn(8, 6, dtype=torch.float64)
    z0 = torch.zeros(8, 5, dtype=torch.float64)
    with torch.no_grad():
        before = e(h, torch.sigmoid(z0))
    after = mirror_descent(lambda y: e(h, y), z0, steps=50, lr=0.2, entropy=0.1).objective
    assert torch.all(after < before)


def test_global_scale_zero_disables_the_label_term() -> None:
    e = MLCEnergy(feature_dim=6, n_labels=5, global_scale=0.0).double()
    h, y = torch.randn(3, 6, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64)
    assert torch.equal(e.global_energy(h, y), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(e(h, y), e.local_energy(h, y))
