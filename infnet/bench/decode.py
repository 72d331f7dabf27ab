"""Test-time decoding speed of a sequence labeller: inference network vs Viterbi vs gradient-based inference.

    python -m infnet.bench decode [--device cpu|cuda] [--threads 1 0] [--gbi-steps 10 50] [--batches 4] [--reps 3]

CoNLL-2003-like random batches: vocabulary 20k words, 100 characters, K = 9 tags, sentence lengths
1 + Geometric (mean 14, cut at 60), word lengths 1 + Poisson(5) (cut at 20), 256 sentences per
batch. Sizes as in Lample et al. 2016 (word embeddings 100, BiLSTM 100 per direction; our char CNN
has 25-d character embeddings and 50 filters, the width of their 2 × 25 char BiLSTM). The same
sentences are decoded to tags by

* ``infnet``: the inference network, features + head + argmax;
* ``viterbi``: the same features, the unary scores of a chain energy (unary + transitions) and exact Viterbi;
* ``gbi-N``: the same features, N steps of entropic mirror descent on the label simplices of a
  unary + chain + conv energy, started from the inference network's logits, then argmax.

Reported in sentences/s for the whole pipeline (from token ids) and for the decoding step alone
(given the BiLSTM features), each as a ratio to the inference network measured in the same run.
``--threads 0`` means all of torch's default threads. Wall-clock minimum over ``--reps`` rounds in
which the decoders take turns.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from infnet.data.seq.types import PAD_ID, SeqBatch, SeqFeatures
from infnet.inference import simplex_mirror_descent
from infnet.nets import SeqEnergy, SeqFeatureNet, SeqInferenceNet

N_WORDS, N_CHARS, K = 20_000, 100, 9
MEAN_LEN, MAX_LEN, MAX_WORD = 14, 60, 20


def random_batch(n: int, rng: np.random.Generator) -> SeqBatch:
    """n CoNLL-like sentences of random ids: words (n, T), chars (n, T, C), mask (n, T)."""
    lengths = np.minimum(rng.geometric(1 / MEAN_LEN, n), MAX_LEN)
    word_lens = np.minimum(1 + rng.poisson(5, (n, lengths.max())), MAX_WORD)
    mask = np.arange(lengths.max()) < lengths[:, None]
    char_mask = (np.arange(word_lens.max()) < word_lens[..., None]) & mask[..., None]
    words = np.where(mask, rng.integers(2, N_WORDS, mask.shape), PAD_ID)
    chars = np.where(char_mask, rng.integers(2, N_CHARS, char_mask.shape), PAD_ID)
    return SeqBatch(torch.from_numpy(words), torch.from_numpy(chars), torch.from_numpy(mask))


def timed(fns: dict[str, Callable[[], object]], reps: int, device: torch.device) -> dict[str, float]:
    """Least wall-clock seconds of each of ``fns`` over ``reps`` rounds after one warm-up. The
    functions take turns within each round, so a change of load on a shared machine hits them all
    alike, and the minimum is the estimate least disturbed by other load."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for rep in range(reps + 1):
        for k, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if rep > 0:
                times[k].append(time.perf_counter() - start)
    return {k: min(v) for k, v in times.items()}


class Decoders:
    """The three decoders over one inference network; each maps a batch (or its features) to tags (B, T)."""

    def __init__(self, device: torch.device) -> None:
        torch.manual_seed(0)
        features = SeqFeatureNet(N_WORDS, N_CHARS, 100, 25, 50, 100, 1, 0.5)
        self.net = SeqInferenceNet(features, K).to(device).eval()
        h = features.out_dim
        self.chain_energy = SeqEnergy(h, K, pairwise=True, high_order="none").to(device).eval().requires_grad_(False)
        self.energy = SeqEnergy(h, K, pairwise=True, high_order="conv", out_init=1.0).to(device).eval().requires_grad_(False)
        for e in (self.chain_energy, self.energy):
            e.init_local_from(self.net.head)
            for p in e.chain.parameters():
                p.normal_()

    def infnet(self, feats: SeqFeatures) -> torch.Tensor:
        """Per-token argmax of the inference network's head: feats -> tags (B, T)."""
        return self.net.head(feats.h).argmax(-1).masked_fill(~feats.mask, 0)

    def viterbi(self, feats: SeqFeatures) -> torch.Tensor:
        """Exact minimiser of the chain energy: feats -> tags (B, T)."""
        unary, chain = self.chain_energy.chain_scores(feats)
        return chain.viterbi(unary, feats.mask)

    def gbi(self, feats: SeqFeatures, steps: int) -> torch.Tensor:
        """``steps`` mirror steps on the unary + chain + conv energy, then argmax: feats -> tags (B, T)."""
        unary = self.energy.unary_scores(feats)  # the unary term is linear in y: computed once, not per step

        def objective(y: torch.Tensor) -> torch.Tensor:
            return -(y * unary).sum((1, 2)) + self.energy.global_energy(feats, y)

        res = simplex_mirror_descent(objective, self.net.head(feats.h), feats.mask, steps, 0.5, 1.0)
        return res.y.argmax(-1).masked_fill(~feats.mask, 0)

    def features(self, batch: SeqBatch) -> SeqFeatures:
        """The shared BiLSTM features: batch -> (h (B, T, 200), mask (B, T))."""
        return SeqFeatures(self.net.features(batch), batch.mask)


def run(device: torch.device, gbi_steps: list[int], n_batches: int, batch_size: int, reps: int) -> list[str]:
    """Markdown rows (one per decoder) at the current thread setting."""
    rng = np.random.default_rng(0)
    batches = [random_batch(batch_size, rng).to(device) for _ in range(n_batches)]
    dec = Decoders(device)
    with torch.no_grad():
        feats = [dec.features(b) for b in batches]
    decoders: dict[str, Callable[[SeqFeatures], torch.Tensor]] = {"infnet": dec.infnet, "viterbi": dec.viterbi}
    decoders.update({f"gbi-{n}": (lambda f, n=n: dec.gbi(f, n)) for n in gbi_steps})
    n_sent = n_batches * batch_size
    runs: dict[str, Callable[[], object]] = {}
    for name, decode in decoders.items():
        runs[f"{name}/full"] = lambda decode=decode: [decode(dec.features(b)) for b in batches]
        runs[f"{name}/only"] = lambda decode=decode: [decode(f) for f in feats]
    with torch.no_grad():
        t = timed(runs, reps, device)
    rows = []
    for name in decoders:
        full, only = t[f"{name}/full"], t[f"{name}/only"]
        rows.append(
            f"| {torch.get_num_threads()} | {name} | {n_sent / full:,.0f} | {full / t['infnet/full']:.2f} "
            f"| {n_sent / only:,.0f} | {only / t['infnet/only']:.1f} |"
        )
    return rows


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m infnet.bench decode", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 0], help="thread counts to run (0 = torch's default, all cores)")
    ap.add_argument("--gbi-steps", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    default_threads = torch.get_num_threads()
    print(f"device={device} batches={args.batches}x{args.batch_size} sentences, vocab={N_WORDS}, K={K}, "
          f"mean length {MEAN_LEN} (max {MAX_LEN})\n")
    print("| threads | decoder | sentences/s (ids → tags) | time ÷ infnet | sentences/s (decode step only) | time ÷ infnet |")
    print("|---|---|---|---|---|---|")
    for threads in args.threads:
        torch.set_num_threads(threads if threads > 0 else default_threads)
        for row in run(device, args.gbi_steps, args.batches, args.batch_size, args.reps):
            print(row, flush=True)
