"""The exact linear-chain CRF against brute-force enumeration of all K^n tag sequences (float64)."""

import itertools

import pytest
import torch

from infnet.nets.crf import LinearChainCRF, first_last

K = 3
LENGTHS = [4, 2, 1, 3]  # varying lengths in one batch; T = 4


def _mask(lengths: list[int], t: int) -> torch.Tensor:
    return torch.arange(t).expand(len(lengths), t) < torch.tensor(lengths).unsqueeze(1)


def _crf(seed: int = 0) -> LinearChainCRF:
    torch.manual_seed(seed)
    crf = LinearChainCRF(K).double()
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def _seq_score(crf: LinearChainCRF, unary: torch.Tensor, tags: tuple[int, ...]) -> torch.Tensor:
    """The score of one sentence (unary (n, K)) written out term by term, independently of the CRF code."""
    s = crf.start[tags[0]] + crf.end[tags[-1]] + sum(unary[t, k] for t, k in enumerate(tags))
    return s + sum(crf.transitions[a, b] for a, b in zip(tags[:-1], tags[1:]))


def _brute(crf: LinearChainCRF, unary: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """log Z, marginals (n, K) and the argmax sequence of one sentence by enumeration."""
    seqs = list(itertools.product(range(K), repeat=n))
    scores = torch.stack([_seq_score(crf, unary[:n], s) for s in seqs])
    probs = torch.softmax(scores, 0)
    marg = torch.zeros(n, K, dtype=torch.float64)
    for p, s in zip(probs, seqs):
        marg[torch.arange(n), torch.tensor(s)] += p
    return torch.logsumexp(scores, 0), marg, seqs[int(scores.argmax())]


@pytest.fixture
def case() -> tuple[LinearChainCRF, torch.Tensor, torch.Tensor]:
    crf = _crf()
    unary = 2 * torch.randn(len(LENGTHS), max(LENGTHS), K, dtype=torch.float64)
    return crf, unary, _mask(LENGTHS, max(LENGTHS))


def test_first_last_positions() -> None:
    first, last = first_last(_mask([3, 1], 4))
    assert first.tolist() == [[True, False, False, False], [True, False, False, False]]
    assert last.tolist() == [[False, False, True, False], [True, False, False, False]]


def test_log_partition_marginals_viterbi_match_enumeration(case) -> None:
    crf, unary, mask = case
    with torch.no_grad():
        log_z, marg, best = crf.log_partition(unary, mask), crf.marginals(unary, mask), crf.viterbi(unary, mask)
        for b, n in enumerate(LENGTHS):
            ref_z, ref_marg, ref_best = _brute(crf, unary[b], n)
            assert torch.allclose(log_z[b], ref_z, atol=1e-12)
            assert torch.allclose(marg[b, :n], ref_marg, atol=1e-12)
            assert torch.all(marg[b, n:] == 0)
            assert tuple(best[b, :n].tolist()) == ref_best
            assert torch.all(best[b, n:] == 0)


def test_score_and_nll_match_enumeration(case) -> None:
    crf, unary, mask = case
    tags = torch.randint(0, K, mask.shape).masked_fill(~mask, -1)  # junk at padding must be ignored
    with torch.no_grad():
        score = crf.score(unary, tags, mask)
        for b, n in enumerate(LENGTHS):
            assert torch.allclose(score[b], _seq_score(crf, unary[b], tuple(tags[b, :n].tolist())), atol=1e-12)
        expected = (crf.log_partition(unary, mask) - score).mean()
    assert torch.allclose(crf.nll(unary, tags, mask), expected, atol=1e-12)


def test_viterbi_score_is_the_maximum(case) -> None:
    crf, unary, mask = case
    with torch.no_grad():
        best = crf.score(unary, crf.viterbi(unary, mask), mask)
        for b, n in enumerate(LENGTHS):
            all_scores = [_seq_score(crf, unary[b], s) for s in itertools.product(range(K), repeat=n)]
            assert torch.allclose(best[b], max(all_scores), atol=1e-12)


def test_padding_changes_nothing(case) -> None:
    """Appending padding positions holding random unary scores (and junk tags) changes no output."""
    crf, unary, mask = case
    tags = torch.randint(0, K, mask.shape)
    extra = 3
    unary_p = torch.cat([unary, 50 * torch.randn(len(LENGTHS), extra, K, dtype=torch.float64)], 1)
    mask_p = _mask(LENGTHS, max(LENGTHS) + extra)
    tags_p = torch.cat([tags, torch.randint(0, K, (len(LENGTHS), extra))], 1)
    with torch.no_grad():
        assert torch.allclose(crf.log_partition(unary_p, mask_p), crf.log_partition(unary, mask), atol=1e-12)
        assert torch.allclose(crf.score(unary_p, tags_p, mask_p), crf.score(unary, tags, mask), atol=1e-12)
        assert torch.allclose(crf.marginals(unary_p, mask_p)[:, : max(LENGTHS)], crf.marginals(unary, mask), atol=1e-12)
        assert torch.equal(crf.viterbi(unary_p, mask_p)[:, : max(LENGTHS)], crf.viterbi(unary, mask))
        # a sentence's results do not depend on the other sentences it is batched with
        alone = crf.log_partition(unary[2:3, :1], mask[2:3, :1])
        assert torch.allclose(alone, crf.log_partition(unary, mask)[2:3], atol=1e-12)


def test_nll_gradients(case) -> None:
    """∂nll/∂unary = (marginals − one_hot(gold)) / B exactly, and the parameter gradients pass gradcheck."""
    crf, unary, mask = case
    tags = torch.randint(0, K, mask.shape)
    u = unary.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(crf.nll(u, tags, mask), u)
    one_hot = torch.nn.functional.one_hot(tags, K).double() * mask.unsqueeze(-1)
    assert torch.allclose(g, (crf.marginals(unary, mask) - one_hot) / len(LENGTHS), atol=1e-12)

    def nll_of(trans: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        params = {"transitions": trans, "start": start, "end": end}
        return torch.func.functional_call(crf, params, (unary, tags, mask))

    params = tuple(p.detach().clone().requires_grad_(True) for p in (crf.transitions, crf.start, crf.end))
    assert torch.autograd.gradcheck(nll_of, params)


def test_marginals_are_differentiable_when_asked(case) -> None:
    """With unary requiring grad, marginals carry a graph (for training through them); their
    gradient matches central finite differences."""
    crf, unary, mask = case
    u = unary.clone().requires_grad_(True)
    m = crf.marginals(u, mask)
    assert m.requires_grad
    assert torch.autograd.gradcheck(lambda x: crf.marginals(x, mask), (u,))
    with torch.no_grad():
        assert not crf.marginals(u, mask).requires_grad
