"""Sequence networks and energies: padding is inert, shapes, initialisation, and what each term models (float64)."""

import itertools

import pytest
import torch

from infnet.data.seq.types import PAD_ID, UNK_ID, SeqBatch, SeqFeatures
from infnet.nets import CharEncoder, SeqEnergy, SeqFeatureNet, SeqInferenceNet, masked_softmax, one_hot_tags
from infnet.nets.sequence import unk_probabilities

N_WORDS, N_CHARS, K, H = 50, 20, 4, 6
LENGTHS = [5, 3, 1, 4]


def _mask(lengths: list[int], t: int) -> torch.Tensor:
    return torch.arange(t).expand(len(lengths), t) < torch.tensor(lengths).unsqueeze(1)


def _batch(lengths: list[int], t: int, c: int, seed: int = 0) -> SeqBatch:
    """Random ids at real positions (words of 1..c characters), PAD_ID elsewhere."""
    g = torch.Generator().manual_seed(seed)
    mask = _mask(lengths, t)
    words = torch.randint(2, N_WORDS, (len(lengths), t), generator=g).masked_fill(~mask, PAD_ID)
    n_chars = torch.randint(1, c + 1, (len(lengths), t), generator=g)
    char_mask = (torch.arange(c) < n_chars.unsqueeze(-1)) & mask.unsqueeze(-1)
    chars = torch.randint(2, N_CHARS, (len(lengths), t, c), generator=g).masked_fill(~char_mask, PAD_ID)
    return SeqBatch(words, chars, mask)


def _pad(batch: SeqBatch, extra_t: int, extra_c: int, junk: bool) -> SeqBatch:
    """The same sentences with ``extra_t`` more positions and ``extra_c`` more character slots;
    the new positions hold random (``junk``) or PAD ids; the mask marks them as padding."""
    b, t, c = batch.chars.shape
    chars = torch.cat([batch.chars, torch.full((b, t, extra_c), PAD_ID)], 2)
    new_words = torch.randint(2, N_WORDS, (b, extra_t)) if junk else torch.full((b, extra_t), PAD_ID)
    new_chars = torch.randint(2, N_CHARS, (b, extra_t, c + extra_c)) if junk else torch.full((b, extra_t, c + extra_c), PAD_ID)
    mask = torch.cat([batch.mask, torch.zeros(b, extra_t, dtype=torch.bool)], 1)
    return SeqBatch(torch.cat([batch.words, new_words], 1), torch.cat([chars, new_chars], 1), mask)


def _feature_net(**kw) -> SeqFeatureNet:
    torch.manual_seed(0)
    args = dict(word_dim=5, char_dim=4, char_hidden=3, lstm_hidden=4, lstm_layers=2, dropout=0.0)
    return SeqFeatureNet(N_WORDS, N_CHARS, **{**args, **kw}).double().eval()


def test_masked_softmax_rows() -> None:
    mask = _mask(LENGTHS, 5)
    y = masked_softmax(torch.randn(4, 5, K, dtype=torch.float64), mask)
    assert torch.allclose(y.sum(-1), mask.double())
    assert torch.all(y[~mask] == 0)


def test_one_hot_tags_ignores_padding_values() -> None:
    mask = _mask([2, 1], 3)
    y = one_hot_tags(torch.tensor([[1, 0, -1], [3, 7, -5]]), mask, K, torch.float64)
    assert y.sum().item() == 3 and y[0, 0, 1] == 1 and y[0, 1, 0] == 1 and y[1, 0, 3] == 1


def test_char_encoder_ignores_padding_characters() -> None:
    torch.manual_seed(0)
    enc = CharEncoder(N_CHARS, 4, 3).double()
    with torch.no_grad():
        enc.embed.weight[PAD_ID].normal_()  # e.g. after loading char vectors: masking must not rely on a zero row
    chars = _batch(LENGTHS, 5, 6).chars[_mask(LENGTHS, 5)]  # (N, C), PAD after each word
    longer = torch.cat([chars, torch.full((len(chars), 4), PAD_ID)], 1)
    out = enc(chars)
    assert out.shape == (len(chars), 3)
    assert torch.allclose(enc(longer), out, atol=1e-14)
    assert torch.equal(enc(torch.full((2, 6), PAD_ID)), torch.zeros(2, 3, dtype=torch.float64))
    changed = chars.clone()
    changed[0, 0] = 2 if chars[0, 0] != 2 else 3
    assert not torch.allclose(enc(changed)[0], out[0])


def test_features_ignore_padding_and_batching() -> None:
    """Extra padding positions and character slots holding random ids change no real feature, padding
    features are zero, and a sentence gets the same features alone as in a batch."""
    net = _feature_net()
    batch = _batch(LENGTHS, 5, 6)
    h = net(batch)
    assert h.shape == (4, 5, net.out_dim) and net.out_dim == 8
    assert torch.all(h[~batch.mask] == 0)
    h_pad = net(_pad(batch, extra_t=3, extra_c=2, junk=True))
    assert torch.allclose(h_pad[:, :5], h, atol=1e-14) and torch.all(h_pad[:, 5:] == 0)
    alone = net(SeqBatch(batch.words[1:2, :3], batch.chars[1:2, :3], batch.mask[1:2, :3]))
    assert torch.allclose(alone, h[1:2, :3], atol=1e-14)


def test_features_are_bidirectional() -> None:
    """Changing the last word changes the first token's features (backward direction) and vice versa."""
    net = _feature_net()
    batch = _batch([5], 5, 4)
    h = net(batch)
    for pos, probe in ((4, 0), (0, 4)):
        words = batch.words.clone()
        words[0, pos] = 2 if words[0, pos] != 2 else 3
        assert not torch.allclose(net(SeqBatch(words, batch.chars, batch.mask))[0, probe], h[0, probe])


def test_word_dropout_replaces_words_by_unk_in_training_only() -> None:
    net = _feature_net(word_dropout=1.0)
    batch = _batch(LENGTHS, 5, 4)
    unk = SeqBatch(batch.words.masked_fill(batch.mask, UNK_ID), batch.chars, batch.mask)
    eval_h, eval_unk = net(batch), net(unk)
    assert not torch.allclose(eval_h, eval_unk)
    net.train()  # dropout=0: training mode differs from eval only by word dropout
    assert torch.allclose(net(batch), eval_unk, atol=1e-14)
    assert torch.allclose(_feature_net(word_dropout=0.0).train()(batch), eval_h, atol=1e-14)


def test_rare_words_are_replaced_by_unk_by_their_train_count() -> None:
    """α/(α + count): a word never seen in train is always replaced, one seen 10¹² times never."""
    counts = torch.where(torch.arange(N_WORDS) % 2 == 0, 0, 10**12)
    net = _feature_net(word_counts=counts, rare_unk=1.0)
    batch = _batch(LENGTHS, 5, 4)
    even = (batch.words % 2 == 0) & batch.mask
    assert even.any() and (~even & batch.mask).any()
    rare_unk = net(SeqBatch(batch.words.masked_fill(even, UNK_ID), batch.chars, batch.mask))
    assert not torch.allclose(net(batch), rare_unk)
    assert torch.allclose(net.train()(batch), rare_unk, atol=1e-14)


def test_unk_probabilities() -> None:
    counts = torch.tensor([0, 1, 3, 9])
    expected = 1 - 0.9 * counts / (counts + 1.0)
    assert torch.allclose(unk_probabilities(4, 0.1, counts, 1.0), expected.float())
    assert torch.allclose(unk_probabilities(4, 0.1, counts, 0.0), torch.full((4,), 0.1))
    assert torch.allclose(unk_probabilities(4, 0.1, None, 1.0), torch.full((4,), 0.1))
    for bad in ((4, 1.5, None, 0.0), (4, 0.1, counts, -1.0), (5, 0.1, counts, 1.0)):
        with pytest.raises(ValueError):
            unk_probabilities(*bad)


def test_pretrained_embeddings() -> None:
    emb = torch.randn(N_WORDS, 5, dtype=torch.float64)
    assert torch.allclose(_feature_net(pretrained=emb).embed.weight.detach(), emb, atol=1e-6)  # via float32
    with pytest.raises(ValueError):
        _feature_net(pretrained=torch.randn(N_WORDS, 7))


def test_inference_net_parts_and_probs() -> None:
    net = SeqInferenceNet(_feature_net(), K).double().eval()
    batch = _batch(LENGTHS, 5, 4)
    logits = net(batch)
    assert logits.shape == (4, 5, K)
    assert torch.allclose(logits, net.head(net.features(batch)))
    p = net.probs(batch)
    assert torch.allclose(p, masked_softmax(logits, batch.mask))
    assert torch.all(p[~batch.mask] == 0)


# --- the energy ----------------------------------------------------------------------------------
CONFIGS = list(itertools.product([False, True], ["none", "conv", "lstm"]))


def _energy(pairwise: bool, high_order: str, out_init: float = 1.0, window: int = 3) -> SeqEnergy:
    """An energy whose every term is non-zero (random chain, random read-out)."""
    torch.manual_seed(0)
    e = SeqEnergy(H, K, pairwise, high_order, order_hidden=5, order_window=window, out_init=out_init).double()
    if pairwise:
        with torch.no_grad():
            for p in e.chain.parameters():
                p.normal_()
    return e


def _feats(lengths: list[int], t: int) -> SeqFeatures:
    torch.manual_seed(1)
    mask = _mask(lengths, t)
    return SeqFeatures(torch.randn(len(lengths), t, H, dtype=torch.float64) * mask.unsqueeze(-1), mask)


def _simplex(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.softmax(torch.randn(*shape, dtype=torch.float64), -1)


@pytest.mark.parametrize("pairwise,high_order", CONFIGS)
def test_padding_never_changes_the_energy(pairwise: bool, high_order: str) -> None:
    """Random y (and random features) at padding, and extra padding positions, leave E unchanged."""
    e = _energy(pairwise, high_order)
    feats = _feats(LENGTHS, 5)
    y = _simplex((4, 5, K))
    base = e(feats, y * feats.mask.unsqueeze(-1))
    assert torch.allclose(e(feats, y), base, atol=1e-12)
    mask = _mask(LENGTHS, 8)
    h = torch.cat([feats.h, torch.randn(4, 3, H, dtype=torch.float64)], 1)
    y_pad = torch.cat([y, _simplex((4, 3, K))], 1)
    assert torch.allclose(e(SeqFeatures(h, mask), y_pad), base, atol=1e-12)
    assert torch.allclose(e(feats, y), e.local_energy(feats, y) + e.global_energy(feats, y))


@pytest.mark.parametrize("pairwise,high_order", CONFIGS)
def test_energy_gradient_matches_finite_differences(pairwise: bool, high_order: str) -> None:
    e = _energy(pairwise, high_order)
    feats = _feats(LENGTHS, 5)
    y = _simplex((4, 5, K)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: e(feats, v), (y,))


@pytest.mark.parametrize("high_order", ["none", "conv", "lstm"])
def test_untrained_energy_is_the_pretrained_unary_term(high_order: str) -> None:
    """Zero-initialised chain and read-out: E = −Σ_t y_tᵀ logits_t of the head copied into the
    energy, so its minimiser is the tagger's argmax; the read-out still receives gradient."""
    torch.manual_seed(0)
    e = SeqEnergy(H, K, pairwise=True, high_order=high_order, order_hidden=5).double()
    head = torch.nn.Linear(H, K).double()
    e.init_local_from(head)
    feats = _feats(LENGTHS, 5)
    y = _simplex((4, 5, K))
    logits = head(feats.h) * feats.mask.unsqueeze(-1)
    assert torch.allclose(e(feats, y), -(y * logits).sum((1, 2)), atol=1e-12)
    if high_order != "none":
        (g,) = torch.autograd.grad(e(feats, y).sum(), e.order_out.weight)
        assert g.abs().max() > 1e-3


def test_chain_energy_is_minus_the_crf_score() -> None:
    e = _energy(True, "none")
    feats = _feats(LENGTHS, 5)
    tags = torch.randint(0, K, (4, 5))
    unary, chain = e.chain_scores(feats)
    y = one_hot_tags(tags, feats.mask, K, torch.float64)
    assert torch.allclose(e(feats, y), -chain.score(unary, tags, feats.mask), atol=1e-12)
    with pytest.raises(ValueError):
        _energy(True, "conv").chain_scores(feats)


def test_without_pairwise_the_chain_is_frozen_at_zero() -> None:
    e = SeqEnergy(H, K, pairwise=False, high_order="none").double()
    feats, y = _feats(LENGTHS, 5), _simplex((4, 5, K))
    assert torch.equal(e.global_energy(feats, y), torch.zeros(4, dtype=torch.float64))
    assert not any(p.requires_grad for p in e.chain.parameters())
    assert not SeqEnergy(H, K, high_order="conv", global_scale=0.0).has_label_term


@pytest.mark.parametrize("window", [1, 2, 3])
def test_conv_term_couples_exactly_the_labels_within_its_window(window: int) -> None:
    """The conv term is a sum of functions of ``window`` consecutive label vectors, so its Hessian
    couples y_t and y_t' iff |t − t'| < window: the window is the term's order."""
    e = _energy(False, "conv", window=window)
    feats = _feats([6], 6)
    hess = torch.autograd.functional.hessian(lambda v: e.global_energy(feats, v.view(1, 6, K)).sum(), _simplex((6 * K,)))
    blocks = hess.view(6, K, 6, K).abs().amax(dim=(1, 3))
    dist = (torch.arange(6)[:, None] - torch.arange(6)[None]).abs()
    assert torch.all(blocks[dist >= window] == 0)
    assert torch.all(blocks[dist < window] > 1e-6)


def test_label_lm_term_is_a_causal_language_model() -> None:
    """For one-hot y, E_high = −s Σ_t [log p(y_t | y_<t) + log K] with p from the LSTM run on each
    prefix separately (independent of the batched, shifted computation)."""
    e = _energy(False, "lstm")
    feats = _feats(LENGTHS, 5)
    tags = torch.randint(0, K, (4, 5))
    y = one_hot_tags(tags, feats.mask, K, torch.float64)
    with torch.no_grad():
        expected = torch.zeros(4, dtype=torch.float64)
        for b, n in enumerate(LENGTHS):
            prev = torch.cat([torch.zeros(1, K, dtype=torch.float64), y[b, : n - 1]])
            for t in range(n):
                out = e.order_lstm(prev[None, : t + 1])[0][0, -1]
                expected[b] -= torch.log_softmax(e.order_out(out), -1)[tags[b, t]] + torch.log(torch.tensor(K))
        assert torch.allclose(e.global_energy(feats, y), e.log_scale.exp() * expected, atol=1e-12)
