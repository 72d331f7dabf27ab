"""The one training loop every method runs through (read it top to bottom).

Per epoch: (pretraining phase: cross-entropy steps) or (main phase: ``method.train_step``) over
shuffled mini-batches, then ``method.end_epoch``, then dev evaluation by the task (``method.task``:
example-F1 at a dev-tuned threshold for multi-label data, span F1 or token accuracy for tagging).
The dev-best main-phase state is kept; when pretraining ends, its dev-best state is restored and
``method.begin_main`` builds the energy from it. Test metrics are computed once, at the end, from the
dev-best state at the dev-tuned decision (threshold). Non-finite losses stop the run with
``TrainingDiverged``. Metrics are logged as ``dev/<metric>`` and ``dev/best_<metric>`` with the
task's metric name (``f1`` or ``acc``).

A resumed run is the same run: the ``LoopState`` checkpointed after each epoch carries every random
stream the rest of the run draws from (torch's generators, the batch samplers' numpy generators) and the
method's own counters (in its state dict), so training resumed from it continues exactly as if it had
never stopped. A run whose pretraining comes from the pretraining cache replays the cached epochs'
metrics through ``on_replay`` (logging only: those epochs are not trained, reported or checkpointed).
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from infnet.methods.base import Method

if TYPE_CHECKING:  # the cache is handed in; the cache's loader allow-lists LoopState (no import circle)
    from infnet.pretrain_cache import PretrainCache


class TrainingDiverged(RuntimeError):
    """A training loss became NaN or infinite."""


@dataclass
class LoopState:
    """Everything needed to resume training after ``epoch`` (checkpointed each epoch)."""

    epoch: int = 0
    method_state: dict[str, Any] | None = None
    best_state: dict[str, Any] | None = None
    best_dev_metric: float = -math.inf
    best_epoch: int = -1
    best_decision: float | None = None  # the dev-tuned threshold of multi-label data
    pretrain_best_state: dict[str, Any] | None = None
    pretrain_best_metric: float = -math.inf
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    rng: dict[str, Any] | None = None  # the random streams after ``epoch`` (:func:`capture_rng`)


EpochCallback = Callable[[int, dict[str, float], LoopState], None]
ReplayCallback = Callable[[int, dict[str, float]], None]
Streams = Mapping[str, np.random.Generator]


def capture_rng(device: torch.device, streams: Streams) -> dict[str, Any]:
    """The state of every random stream a run's future draws from, as plain data: ``torch`` (the CPU
    generator, a uint8 tensor), ``cuda`` (the generator of ``device``, when it is a GPU) and ``numpy``
    (name -> bit-generator state of each of ``streams``, the batch samplers' generators)."""
    saved: dict[str, Any] = {"torch": torch.get_rng_state()}
    saved["numpy"] = {name: generator.bit_generator.state for name, generator in streams.items()}
    if device.type == "cuda":
        saved["cuda"] = torch.cuda.get_rng_state(device)
    return saved


def restore_rng(saved: dict[str, Any], device: torch.device, streams: Streams) -> None:
    """Put the random streams back where :func:`capture_rng` saw them. A stream of ``streams`` that
    ``saved`` lacks keeps its state (a pretraining-cache entry has none: pretraining samples no batches).

    Raises:
        ValueError: ``saved`` has a numpy stream this run does not (a checkpoint of another configuration).
    """
    numpy_states = saved.get("numpy", {})
    if unknown := sorted(set(numpy_states) - set(streams)):
        raise ValueError(f"the checkpoint has random streams {unknown} that this run lacks (it has {sorted(streams)})")
    torch.set_rng_state(saved["torch"])
    if device.type == "cuda" and "cuda" in saved:
        torch.cuda.set_rng_state(saved["cuda"], device)
    for name, state in numpy_states.items():
        streams[name].bit_generator.state = state


def evaluate(method: Method, split: Any, device: torch.device) -> torch.Tensor:
    """Relaxed predictions ``method.predict`` for a whole split -> (N, *S) on CPU."""
    return split.map_inputs(method.predict, device).cpu()


PRETRAIN_KEYS = ("infnet", "opt_infnet", "main")


def pretrain_part(state: LoopState) -> LoopState:
    """A copy of ``state`` whose method states keep only what pretraining trains (the inference
    network and its optimiser) and whose random streams keep only torch's (pretraining samples no
    batches), so that it can seed any method and any energy configuration."""

    def keep(d: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if d is None else {k: v for k, v in d.items() if k in PRETRAIN_KEYS}

    part = copy.deepcopy(state)
    part.method_state, part.pretrain_best_state = keep(part.method_state), keep(part.pretrain_best_state)
    part.rng = {k: v for k, v in (part.rng or {}).items() if k != "numpy"}
    return part


def _check_finite(stats: dict[str, float], epoch: int) -> None:
    """Raise ``TrainingDiverged`` if any ``loss/*`` entry of ``stats`` is NaN or infinite."""
    bad = {k: v for k, v in stats.items() if k.startswith("loss/") and not math.isfinite(v)}
    if bad:
        raise TrainingDiverged(f"non-finite loss at epoch {epoch}: {bad}")


def fit(
    method: Method,
    data: Any,
    max_epochs: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    state: LoopState | None = None,
    on_epoch: EpochCallback | None = None,
    pretrain_cache: PretrainCache | None = None,
    streams: Streams | None = None,
    on_replay: ReplayCallback | None = None,
) -> LoopState:
    """Train ``method`` on ``data.train`` for ``max_epochs`` epochs (resuming from ``state``).

    ``on_epoch(epoch, metrics, state)`` follows every trained epoch. ``streams`` are the numpy
    generators of the method's batch samplers (by name): checkpointed with torch's in ``state.rng``.
    With ``pretrain_cache``, a stored CE pretraining is reused (and a new one stored); the cached
    epochs' metrics then go to ``on_replay(epoch, metrics)`` (not to ``on_epoch``).
    """
    streams = streams or {}
    state = state or LoopState()
    if pretrain_cache is not None and state.epoch == 0 and (entry := pretrain_cache.load()) is not None:
        state = entry["state"]
        if on_replay is not None:
            for row in state.history:  # the cached (pretraining) epochs
                on_replay(int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})
    if state.rng is not None:
        restore_rng(state.rng, device, streams)
    if state.method_state is not None:
        if state.method_state.get("main") and not method.main:
            method.begin_main()
        method.load_state_dict(state.method_state)
    task = method.task
    dev_gold = task.gold(data.dev)
    diag_x, diag_y = (t.to(device) for t in data.dev.batch(np.arange(min(len(data.dev), 512))))
    while state.epoch < max_epochs:
        epoch = state.epoch
        start = time.perf_counter()
        if not method.main and epoch == method.pretrain_epochs:
            if pretrain_cache is not None and state.method_state is not None:
                pretrain_cache.save({"state": pretrain_part(state)})
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

        sel = task.select(evaluate(method, data.dev, device), dev_gold)
        metrics[f"dev/{task.metric}"] = sel.metric
        metrics.update({f"dev/{k}": v for k, v in sel.extra.items()})
        if sel.decision is not None:
            metrics["dev/threshold"] = sel.decision
        metrics.update({"phase_main": float(method.main), "epoch_seconds": time.perf_counter() - start})
        snapshot = method.state_dict()  # one deep copy per epoch, shared by the fields below (never mutated)
        if method.main:
            metrics.update(method.diagnostics(diag_x, diag_y))
            if sel.metric > state.best_dev_metric:
                state.best_dev_metric, state.best_epoch, state.best_decision = sel.metric, epoch, sel.decision
                state.best_state = snapshot
        elif sel.metric > state.pretrain_best_metric:
            state.pretrain_best_metric, state.pretrain_best_state = sel.metric, snapshot
        metrics[f"dev/best_{task.metric}"] = state.best_dev_metric if method.main else state.pretrain_best_metric
        state.history.append({"epoch": float(epoch), **metrics})
        state.epoch = epoch + 1
        state.method_state = snapshot
        state.rng = capture_rng(device, streams)
        if on_epoch is not None:
            on_epoch(epoch, metrics, state)
    return state


def predict_test(method: Method, data: Any, state: LoopState, device: torch.device) -> torch.Tensor:
    """Predictions (N, *S) of the dev-best state on the test split."""
    if state.best_state is None:
        raise RuntimeError("no main-phase epoch was run: raise trainer.max_epochs above method.pretrain_epochs")
    method.load_state_dict(state.best_state)
    return evaluate(method, data.test, device)


def score_test(method: Method, data: Any, state: LoopState, scores: torch.Tensor) -> dict[str, float]:
    """``test/<metric>`` of test predictions ``scores`` (N, *S) (multi-label: at the dev-tuned
    threshold, and ``test/f1_at_0.5``)."""
    return {f"test/{k}": v for k, v in method.task.score(scores, method.task.gold(data.test), state.best_decision).items()}
