"""Cost of one hypergradient relative to one inner training step, on the bibtex-sized MLC model.

    python -m infnet.bench hypergrad [--device cpu|cuda] [--threads 1] [--reps 10]

Everything is measured side by side in one process and printed as ratios:

1. time and memory of one ``hypergrad`` call (cg / neumann / identity for K = 5, 10, 20) divided by
   one inner step of the ``implicit`` method (forward, backward, Adam step on ψ);
   "inner steps per HVP" = (hypergradient time − identity time) / HVP calls / inner-step time;
2. memory of ``unrolled`` vs ``cg`` as T grows (implicit must stay flat in T, unrolled grows);
3. one ``implicit`` training epoch at its default T and K divided by one ``ce`` epoch.

Memory is the bytes of tensors autograd saves for backward (``saved_tensors_hooks``; the graph is
what grows with T), plus ``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from infnet.compose import compose
from infnet.data.types import MLCSplit, SparseRows
from infnet.methods import MethodContext, build_method
from infnet.methods.implicit import Implicit

N_FEATURES, N_LABELS, BATCH = 1836, 159, 32  # bibtex


def saved_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` and count bytes of distinct tensors saved for backward while it ran."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def timed(fn: Callable[[], Any], reps: int, device: torch.device) -> float:
    """Median seconds of ``fn`` over ``reps`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_split(n: int, rng: np.random.Generator) -> MLCSplit:
    """Bibtex-like split: binary features at bibtex's density (~3.7%), ~2.4 labels per example."""
    x = (rng.random((n, N_FEATURES)) < 0.037).astype(np.float32)
    y = (rng.random((n, N_LABELS)) < 2.4 / N_LABELS).astype(np.uint8)
    return MLCSplit(SparseRows.from_dense(x), y)


def build(overrides: list[str], device: torch.device, split: MLCSplit) -> Any:
    cfg = compose(["method=implicit", *overrides])
    rng = np.random.default_rng(1)

    def sample() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        idx = rng.choice(len(split), BATCH, replace=False)
        x, y = split.batch(idx)
        return x.to(device), y.to(device), idx

    method = build_method(MethodContext(N_FEATURES, N_LABELS, cfg.model, cfg.method, device, sample, split))
    method.begin_main()
    return method, sample


def epoch_seconds(method: Any, split: MLCSplit, device: torch.device) -> float:
    """Wall time of one pass of ``train_step`` over ``split`` in batches of 32."""
    order = np.random.default_rng(0).permutation(len(split))
    start = time.perf_counter()
    for b in range(0, len(order), BATCH):
        idx = order[b : b + BATCH]
        x, y = split.batch(idx)
        method.train_step(x.to(device), y.to(device), idx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m infnet.bench hypergrad", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--epoch-examples", type=int, default=4392, help="examples per timed epoch (bibtex train minus dev)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    split = random_split(args.epoch_examples, np.random.default_rng(0))
    method, sample = build([], device, split)
    assert isinstance(method, Implicit)
    m = method.ctx.method
    x, y, idx = sample()
    x_out, y_out, _ = sample()
    h = method.feats(x, idx)

    def inner_step() -> None:
        method.inner_count = 1  # never a multiple of T: no outer step inside
        m.inner_steps = 10**9
        method.train_step(x, y, idx)

    t_inner = timed(inner_step, args.reps, device)
    _, mem_inner = saved_bytes(inner_step)
    print(f"device={device} threads={args.threads} psi_params={sum(p.numel() for p in method.infnet.parameters())} "
          f"theta_params={sum(p.numel() for p in method.energy.parameters())}")
    print(f"one inner step: {1e3 * t_inner:.2f} ms, saved-tensor memory {mem_inner / 2**20:.2f} MiB\n")

    print("| solver | K | time / inner step | memory / inner step | HVP calls | inner steps per HVP | rel. residual |")
    print("|---|---|---|---|---|---|---|")
    m.damping = 1.0
    rows: dict[tuple[str, int], float] = {}
    for solver, ks in (("identity", [0]), ("neumann", [5, 10, 20]), ("cg", [5, 10, 20])):
        for k in ks:
            m.solver, m.iters, m.tol = solver, max(k, 1), 1e-12
            m.alpha = 0.01 if solver == "neumann" else None  # fixed α: no power iterations in the timing
            t = timed(lambda: method.hypergradient(x, y, h, x_out, y_out), args.reps, device)
            (_, info), mem = saved_bytes(lambda: method.hypergradient(x, y, h, x_out, y_out))
            rows[(solver, k)] = t
            per_hvp = (t - rows[("identity", 0)]) / info.hvp_calls / t_inner if info.hvp_calls else float("nan")
            print(f"| {solver} | {k or '-'} | {t / t_inner:.2f} | {mem / max(mem_inner, 1):.2f} | {info.hvp_calls} | "
                  f"{per_hvp:.2f} | {info.residual:.2e} |")

    print("\nmemory as T grows (saved-tensor MiB): unrolled differentiates through T steps; cg (K=10) after T inner steps")
    print("| T | unrolled | cg K=10 | unrolled / cg |")
    print("|---|---|---|---|")
    for t_steps in (1, 2, 4, 8, 16):
        m.solver, m.iters, m.alpha = "unrolled", t_steps, 1e-3
        _, mem_unrolled = saved_bytes(lambda: method.hypergradient(x, y, h, x_out, y_out))
        for _ in range(t_steps):
            inner_step()
        m.solver, m.iters, m.alpha = "cg", 10, None
        _, mem_cg = saved_bytes(lambda: method.hypergradient(x, y, h, x_out, y_out))
        print(f"| {t_steps} | {mem_unrolled / 2**20:.1f} | {mem_cg / 2**20:.1f} | {mem_unrolled / mem_cg:.2f} |")

    defaults = compose(["method=implicit"]).method
    ce, _ = build(["method=ce"], device, split)
    ce.main = True
    implicit, _ = build([], device, split)
    t_ce = epoch_seconds(ce, split, device)
    t_imp = epoch_seconds(implicit, split, device)
    print(f"\nepoch time: implicit (T={defaults.inner_steps}, {defaults.solver} K={defaults.iters}) {t_imp:.2f}s / "
          f"ce {t_ce:.2f}s = {t_imp / t_ce:.2f}x")
