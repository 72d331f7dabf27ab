"""Cost of one hypergradient relative to one inner training step, on the bibtex-sized MLC model.

    python -m infnet.bench hypergrad [--device cpu|cuda] [--threads 1] [--reps 10]

Everything is measured side by side in one process and printed as ratios:

1. time and memory of one ``hypergrad`` call (cg / neumann / identity for K = 5, 10, 20) divided by
   one inner step of the ``implicit`` method (forward, backward, Adam step on ψ);
   "inner steps per HVP" = (hypergradient time − identity time) / HVP calls / inner-step time (the
   solver's vector arithmetic included), and the time of one Hessian-vector product alone;
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
from infnet.data.mlc.types import MLCDataset, MLCSplit, SparseRows
from infnet.implicit import tree
from infnet.implicit.hvp import HVP_MODES, HVPOperator
from infnet.methods import MethodContext, build_method
from infnet.methods.implicit import Implicit
from infnet.tasks.multilabel import MultiLabelTask
from infnet.train import make_sampler

N_FEATURES, N_LABELS, BATCH = 1836, 159, 32  # bibtex
#: (solver, K, damping ρ): identity first (the baseline of "inner steps per HVP"); ρ=10 makes the
#: full-ψ system positive definite here, so CG runs all K iterations instead of stopping on negative curvature.
CASES = [("identity", 0, 1.0)] + [("neumann", k, 1.0) for k in (5, 10, 20)] + [
    ("cg", k, rho) for rho in (1.0, 10.0) for k in (5, 10, 20)
]


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
    """Median seconds of ``fn`` over ``reps`` runs after one warm-up (CPU time of this process on
    CPU, so that other load on the machine does not distort the ratios; wall time on CUDA)."""
    fn()
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = clock()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(clock() - start)
    return statistics.median(times)


def random_split(n: int, rng: np.random.Generator) -> MLCSplit:
    """Bibtex-like split: binary features at bibtex's density (~3.7%), ~2.4 labels per example."""
    x = (rng.random((n, N_FEATURES)) < 0.037).astype(np.float32)
    y = (rng.random((n, N_LABELS)) < 2.4 / N_LABELS).astype(np.uint8)
    return MLCSplit(SparseRows.from_dense(x), y)


def build(overrides: list[str], device: torch.device, split: MLCSplit) -> Any:
    cfg = compose(["method=implicit", *overrides])
    sample = make_sampler(split, BATCH, 1, device)
    data = MLCDataset("random", split, split, split, [], [], dev_seed=0, dev_fraction=0.0, source_sha256="")
    method = build_method(MethodContext(MultiLabelTask(data, cfg.model), cfg.model, cfg.method, device, sample, split))
    method.begin_main()
    return method, sample


def epoch_seconds(method: Any, split: MLCSplit, device: torch.device) -> float:
    """Seconds (CPU time of this process on CPU, wall time on CUDA) of one pass of ``train_step``
    over ``split`` in batches of 32."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    order = np.random.default_rng(0).permutation(len(split))
    start = clock()
    for b in range(0, len(order), BATCH):
        idx = order[b : b + BATCH]
        x, y = split.batch(idx)
        method.train_step(x.to(device), y.to(device), idx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clock() - start


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m infnet.bench hypergrad", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--epoch-reps", type=int, default=3, help="rounds of the epoch-time comparison (median)")
    ap.add_argument("--epoch-examples", type=int, default=4392, help="examples per timed epoch (bibtex train minus dev)")
    ap.add_argument("--epochs-only", action="store_true", help="only the epoch-time comparison")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    split = random_split(args.epoch_examples, np.random.default_rng(0))
    if args.epochs_only:
        epoch_table(device, split, args.epoch_reps)
        return
    method, sample = build([], device, split)
    assert isinstance(method, Implicit)
    m = method.hp
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

    print("| ψ in the system | solver | K | ρ | time / inner step | memory / inner step | HVP calls | CG/Neumann iterations | inner steps per HVP | rel. residual |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    identity_time: dict[str, float] = {}
    for params in ("all", "head"):
        m.implicit_params = params
        for solver, k, rho in CASES:
            m.solver, m.iters, m.damping, m.tol = solver, max(k, 1), rho, 1e-12
            m.alpha = 0.01 if solver == "neumann" else None  # fixed α: no power iterations in the timing
            t = timed(lambda: method.hypergradient(x, y, h, x_out, y_out), args.reps, device)
            (_, info), mem = saved_bytes(lambda: method.hypergradient(x, y, h, x_out, y_out))
            identity_time.setdefault(params, t)
            per_hvp = (t - identity_time[params]) / info.hvp_calls / t_inner if info.hvp_calls else float("nan")
            print(f"| {params} | {solver} | {k or '-'} | {rho:g} | {t / t_inner:.2f} | {mem / max(mem_inner, 1):.2f} | "
                  f"{info.hvp_calls} | {info.iterations} | {per_hvp:.2f} | {info.residual:.1e} |")
    m.implicit_params, m.damping = "all", 1.0

    print("\none Hessian-vector product alone (graph of ∇ψG built once and reused; forward = forward-over-reverse):")
    print("| ψ in the system | HVP mode | time / inner step |")
    print("|---|---|---|")
    method.infnet.eval()
    for params in ("all", "head"):
        m.implicit_params = params
        inner, _, psi, theta = method.bilevel_problem(x, y, h, x_out, y_out)
        for mode in HVP_MODES:
            op = HVPOperator(inner, tree.detached(psi, True), tree.detached(theta, True), mode=mode)
            v = {k: torch.randn_like(p) for k, p in psi.items()}
            print(f"| {params} | {mode} | {timed(lambda: op.hvp(v), args.reps, device) / t_inner:.2f} |")
    method.infnet.train()
    m.implicit_params = "all"

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

    epoch_table(device, split, args.epoch_reps)


def epoch_table(device: torch.device, split: MLCSplit, reps: int) -> None:
    """Print the epoch-time ratio implicit / ce of every ``EPOCH_VARIANTS`` entry."""
    defaults = compose(["method=implicit"]).method
    ce, _ = build(["method=ce"], device, split)
    ce.main = True
    print(f"\nepoch time ratio, implicit / ce (defaults: T={defaults.inner_steps}, {defaults.solver} K={defaults.iters}, "
          f"ρ={defaults.damping}, ψ={defaults.implicit_params}):")
    print("| implicit variant | implicit epoch s | ce epoch s | ratio |")
    print("|---|---|---|---|")
    for name, overrides in EPOCH_VARIANTS:
        implicit, _ = build(overrides, device, split)
        epoch_seconds(implicit, split, device)  # warm-up (and the feature cache)
        epoch_seconds(ce, split, device)
        t_imp, t_ce = epoch_ratio(implicit, ce, split, device, reps)
        print(f"| {name} | {t_imp:.2f} | {t_ce:.2f} | {t_imp / t_ce:.2f}x |")


def epoch_ratio(implicit: Any, ce: Any, split: MLCSplit, device: torch.device, reps: int) -> tuple[float, float]:
    """Median seconds of an ``implicit`` and a ``ce`` epoch over ``reps`` rounds, the two taking turns
    (ce, implicit, ce per round, so that drifting machine load hits both alike)."""
    t_imp, t_ce = [], []
    for _ in range(reps):
        before = epoch_seconds(ce, split, device)
        t_imp.append(epoch_seconds(implicit, split, device))
        t_ce.append((before + epoch_seconds(ce, split, device)) / 2)
    return statistics.median(t_imp), statistics.median(t_ce)

EPOCH_VARIANTS = [
    ("defaults", []),
    ("frozen energy (inner steps only)", ["method.freeze_energy=true"]),
    ("ψ=head, cg K=5, T=10", ["method.inner_steps=10"]),
    ("ψ=all, cg K=5, T=20", ["method.implicit_params=all"]),
    ("ψ=all, cg K=5, T=10 (the default before)", ["method.implicit_params=all", "method.inner_steps=10"]),
    ("ψ=all, identity, T=20", ["method.implicit_params=all", "method.solver=identity"]),
    ("T=5, cg K=5, 3 θ steps per ψ state", ["method.inner_steps=5", "method.outer_steps=3"]),
    ("T=5, cg K=5", ["method.inner_steps=5"]),
    ("T=5, identity", ["method.inner_steps=5", "method.solver=identity"]),
    ("T=10, identity", ["method.inner_steps=10", "method.solver=identity"]),
]
