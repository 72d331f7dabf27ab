"""Gradient-based inference on label simplices vs exact CRF marginals, and search error vs Viterbi (float64).

Theory behind the asserts (see ``infnet.inference.gbi_simplex``): min_y E(y) − τ H(y) over per-token
simplices is the naive mean-field problem for p(tags) ∝ exp(−E/τ). Without pairwise terms it is exact;
with pairwise terms of strength ε its marginals agree with the exact ones to first order in ε, so the
error is c·ε² + O(ε³) and halving ε divides it by 4 + O(ε).
"""

import itertools

import pytest
import torch

from infnet.data.seq.types import SeqFeatures
from infnet.inference import mirror_descent, search_error, simplex_mirror_descent
from infnet.nets import SeqEnergy, one_hot_tags

K, H = 3, 5
LENGTHS = [5, 3, 1, 4]


def _feats(seed: int = 1) -> SeqFeatures:
    torch.manual_seed(seed)
    mask = torch.arange(max(LENGTHS)).expand(len(LENGTHS), -1) < torch.tensor(LENGTHS).unsqueeze(1)
    return SeqFeatures(torch.randn(len(LENGTHS), max(LENGTHS), H, dtype=torch.float64), mask)


def _chain_energy(pairwise: bool, coupling: float = 1.0, seed: int = 0) -> SeqEnergy:
    """A chain energy with random unary weights, start/end scores and transitions × ``coupling``."""
    torch.manual_seed(seed)
    e = SeqEnergy(H, K, pairwise=pairwise, high_order="none").double()
    if pairwise:
        with torch.no_grad():
            for p in e.chain.parameters():
                p.normal_()
            e.chain.transitions.mul_(coupling)
    return e


def _gbi(e: SeqEnergy, feats: SeqFeatures, tau: float, steps: int = 100):
    z0 = torch.randn(*feats.mask.shape, K, dtype=torch.float64)
    return simplex_mirror_descent(lambda y: e(feats, y), z0, feats.mask, steps, lr=0.5 / tau, entropy=tau)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_unary_only_fixed_point_is_the_exact_crf_marginals(tau: float) -> None:
    """No pairwise term: GBI converges to the exact marginals softmax(unary / τ) (CRF with zero chain)."""
    e, feats = _chain_energy(pairwise=False), _feats()
    res = _gbi(e, feats, tau)
    unary, chain = e.chain_scores(feats)
    with torch.no_grad():
        exact = chain.marginals(unary / tau, feats.mask)
    assert torch.allclose(res.y, exact, atol=1e-8)
    assert torch.all(res.y[~feats.mask] == 0)
    assert res.grad_norm_last < 1e-8 < res.grad_norm_first


def test_pairwise_fixed_point_is_mean_field_with_quadratic_error() -> None:
    """With transitions of strength ε, GBI reaches a mean-field fixed point y_t = softmax(−∂E/∂y_t / τ)
    (not the exact marginals); its max error against the exact CRF marginals scales as ε²: halving ε
    divides it by 4 + O(ε). Asserted: a ratio in (3, 5) — far from 2 (a first-order error) and 8."""
    feats, tau = _feats(), 1.0
    errors = []
    for coupling in (0.2, 0.1, 0.05):
        e = _chain_energy(pairwise=True, coupling=coupling)
        res = _gbi(e, feats, tau, steps=150)
        y = res.y.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(e(feats, y).sum(), y)
        mean_field = torch.softmax(-g / tau, -1) * feats.mask.unsqueeze(-1)
        assert torch.allclose(res.y, mean_field, atol=1e-10)
        unary, chain = e.chain_scores(feats)
        with torch.no_grad():
            exact = chain.marginals(unary, feats.mask)  # τ = 1
        errors.append(float((res.y - exact).abs().max()))
    assert errors[-1] > 1e-6  # pairwise terms really make mean field inexact
    for big, small in zip(errors[:-1], errors[1:]):
        assert 3.0 < big / small < 5.0, errors


def test_gbi_lowers_a_high_order_energy_and_padding_stays_zero() -> None:
    torch.manual_seed(0)
    e = SeqEnergy(H, K, pairwise=True, high_order="conv", out_init=1.0).double()
    feats = _feats()
    z0 = torch.randn(*feats.mask.shape, K, dtype=torch.float64)
    with torch.no_grad():
        before = e(feats, torch.softmax(z0, -1) * feats.mask.unsqueeze(-1))
    res = simplex_mirror_descent(lambda y: e(feats, y), z0, feats.mask, steps=50, lr=0.2, entropy=0.1)
    assert torch.all(res.objective < before)
    assert torch.all(res.y[~feats.mask] == 0)
    assert torch.allclose(res.y.sum(-1), feats.mask.double())


def test_bernoulli_and_simplex_share_one_loop() -> None:
    """A K=2 simplex over (y, 1 − y) with logits (z, 0) is a Bernoulli with logit z; for a linear
    energy both fixed points are the same exact marginals."""
    torch.manual_seed(3)
    s = torch.randn(4, 6, dtype=torch.float64)
    bern = mirror_descent(lambda y: -(y * s).sum(-1), torch.zeros_like(s), steps=200, lr=0.5)
    mask = torch.ones(4, 6, dtype=torch.bool)
    simp = simplex_mirror_descent(lambda y: -(y[..., 0] * s).sum(-1), torch.zeros(4, 6, 2, dtype=torch.float64), mask, 200, 0.5)
    assert torch.allclose(simp.y[..., 0], bern.y, atol=1e-10)
    assert torch.allclose(bern.y, torch.sigmoid(s), atol=1e-10)


# --- search error ------------------------------------------------------------------------------------
def _brute_min_energy(e: SeqEnergy, feats: SeqFeatures) -> torch.Tensor:
    """min over all K^n tag sequences of E, per sentence, by enumeration."""
    best = []
    for b, n in enumerate(LENGTHS):
        one = SeqFeatures(feats.h[b : b + 1, :n], feats.mask[b : b + 1, :n])
        tags = torch.tensor(list(itertools.product(range(K), repeat=n)))
        rep = SeqFeatures(one.h.expand(len(tags), -1, -1), one.mask.expand(len(tags), -1))
        best.append(e(rep, one_hot_tags(tags, rep.mask, K, torch.float64)).min())
    return torch.stack(best)


def test_search_error_against_brute_force_viterbi() -> None:
    """Viterbi of the energy is its brute-force minimiser; the per-token argmax of the unary scores
    (what an inference net that ignores the chain would output) has the brute-force energy gap."""
    e, feats = _chain_energy(pairwise=True, coupling=3.0), _feats()
    minimum = _brute_min_energy(e, feats)
    unary, chain = e.chain_scores(feats)
    best = chain.viterbi(unary, feats.mask)
    with torch.no_grad():
        assert torch.allclose(e(feats, one_hot_tags(best, feats.mask, K, torch.float64)), minimum, atol=1e-12)
        exact = search_error(e, feats, best)
        assert exact.rate == 0.0 and abs(exact.mean_gap) < 1e-12

        greedy = unary.argmax(-1)
        err = search_error(e, feats, greedy)
        gaps = e(feats, one_hot_tags(greedy, feats.mask, K, torch.float64)) - minimum
        assert torch.allclose(err.gaps, gaps, atol=1e-12) and torch.all(gaps > -1e-12)
        assert err.rate == float((gaps > 1e-6).double().mean())
        assert abs(err.mean_gap - float(gaps.mean())) < 1e-12

        one_wrong = best.clone()
        one_wrong[0, 2] = (best[0, 2] + 1) % K  # the minimiser is unique: only sentence 0 is worse
        assert search_error(e, feats, one_wrong).rate == 0.25
