"""The one training loop every method runs through (read it top to bottom).

Per epoch: (pretraining phase: cross-entropy steps) or (main phase: ``method.train_step``) over
shuffled mini-batches, then ``method.end_epoch``, then dev evaluation with a dev-tuned threshold.
The dev-best main-phase state is kept; when pretraining ends, its dev-best state is restored and
``method.begin_main`` builds the energy from it. Test metrics are computed once, at the end, from the
dev-best state at the dev-tuned threshold (and at 0.5). Non-finite losses stop the run with
``TrainingDiverged``.
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from infnet.data.types import MLCDataset, MLCSplit
from infnet.methods.base import Method
from infnet.metrics import example_f1, tune_threshold
from infnet.pretrain_cache import PretrainCache


class TrainingDiverged(RuntimeError):
    """A training loss became NaN or infinite."""


@dataclass
class LoopState:
    """Everything needed to resume training after ``epoch`` (checkpointed each epoch)."""

    epoch: int = 0
    method_state: dict[str, Any] | None = None
    best_state: dict[str, Any] | None = None
    best_dev_f1: float = -math.inf
    best_epoch: int = -1
    best_threshold: float = 0.5
    pretrain_best_state: dict[str, Any] | None = None
    pretrain_best_f1: float = -math.inf
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


EpochCallback = Callable[[int, dict[str, float], LoopState], None]


def evaluate(method: Method, split: MLCSplit, device: torch.device) -> torch.Tensor:
    """Relaxed predictions ``method.predict`` for a whole split -> (N, L) on CPU."""
    return split.map_inputs(method.predict, device).cpu()


PRETRAIN_KEYS = ("infnet", "opt_infnet", "main")


def pretrain_part(state: LoopState) -> LoopState:
    """A copy of ``state`` whose method states keep only what pretraining trains (the inference
    network and its optimiser), so that it can seed any method and any energy configuration."""

    def keep(d: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if d is None else {k: v for k, v in d.items() if k in PRETRAIN_KEYS}

    part = copy.deepcopy(state)
    part.method_state, part.pretrain_best_state = keep(part.method_state), keep(part.pretrain_best_state)
    return part


def _check_finite(stats: dict[str, float], epoch: int) -> None:
    """Raise ``TrainingDiverged`` if any ``loss/*`` entry of ``stats`` is NaN or infinite."""
    bad = {k: v for k, v in stats.items() if k.startswith("loss/") and not math.isfinite(v)}
    if bad:
        raise TrainingDiverged(f"non-finite loss at epoch {epoch}: {bad}")


def fit(
    method: Method,
    data: MLCDataset,
    max_epochs: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    state: LoopState | None = None,
    on_epoch: EpochCallback | None = None,
    pretrain_cache: PretrainCache | None = None,
) -> LoopState:
    """Train ``method`` on ``data.train`` for ``max_epochs`` epochs (resuming from ``state``).

    With ``pretrain_cache``, a stored CE pretraining is reused (and a new one stored).
    """
    state = state or LoopState()
    if pretrain_cache is not None and state.epoch == 0 and (entry := pretrain_cache.load()) is not None:
        state = entry["state"]
        torch.set_rng_state(entry["rng"])
    if state.method_state is not None:
        if state.method_state.get("main") and not method.main:
            method.begin_main()
        method.load_state_dict(state.method_state)
    dev_y = torch.from_numpy(data.dev.labels).float()
    diag_x, diag_y = (t.to(device) for t in data.dev.batch(np.arange(min(len(data.dev), 512))))
    while state.epoch < max_epochs:
        epoch = state.epoch
        start = time.perf_counter()
        if not method.main and epoch == method.pretrain_epochs:
            if pretrain_cache is not None and state.method_state is not None:
                pretrain_cache.save({"state": pretrain_part(state), "rng": torch.get_rng_state()})
            method.load_state_dict(state.pretrain_best_state or method.state_dict())
            method.begin_main()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(data.train))
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            x, y = data.train.batch(idx)
            x, y = x.to(device), y.to(device)
            stats = method.train_step(x, y, idx) if method.main else method.ce_step(x, y)
            for k, v in stats.items():
                sums[k] += v
                counts[k] += 1
        means = {k: v / counts[k] for k, v in sums.items()}  # mean over the batches reporting k
        _check_finite(means, epoch)
        metrics = {f"train/{k}": v for k, v in means.items()}
        if method.main:
            metrics.update({f"train/{k}": v for k, v in method.end_epoch().items()})
        state.train_seconds += time.perf_counter() - start

        dev_scores = evaluate(method, data.dev, device)
        threshold, dev_f1 = tune_threshold(dev_scores, dev_y)
        metrics.update({
            "dev/f1": dev_f1,
            "dev/f1_at_0.5": example_f1(dev_scores, dev_y, 0.5),
            "dev/threshold": threshold,
            "phase_main": float(method.main),
            "epoch_seconds": time.perf_counter() - start,
        })
        snapshot = method.state_dict()  # one deep copy per epoch, shared by the fields below (never mutated)
        if method.main:
            metrics.update(method.diagnostics(diag_x, diag_y))
            if dev_f1 > state.best_dev_f1:
                state.best_dev_f1, state.best_epoch, state.best_threshold = dev_f1, epoch, threshold
                state.best_state = snapshot
        elif dev_f1 > state.pretrain_best_f1:
            state.pretrain_best_f1, state.pretrain_best_state = dev_f1, snapshot
        metrics["dev/best_f1"] = state.best_dev_f1 if method.main else state.pretrain_best_f1
        state.history.append({"epoch": float(epoch), **metrics})
        state.epoch = epoch + 1
        state.method_state = snapshot
        if on_epoch is not None:
            on_epoch(epoch, metrics, state)
    return state


def test_metrics(method: Method, data: MLCDataset, state: LoopState, device: torch.device) -> dict[str, float]:
    """Load the dev-best state and score test at the dev-tuned threshold and at 0.5."""
    if state.best_state is None:
        raise RuntimeError("no main-phase epoch was run: raise trainer.max_epochs above method.pretrain_epochs")
    method.load_state_dict(state.best_state)
    scores = evaluate(method, data.test, device)
    gold = torch.from_numpy(data.test.labels).float()
    return {
        "test/f1": example_f1(scores, gold, state.best_threshold),
        "test/f1_at_0.5": example_f1(scores, gold, 0.5),
    }
