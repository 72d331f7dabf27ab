"""The Ray Tune trainable: one trial = one ``infnet.train.run_training`` (the CLI's code path).

The trial's config is ``{"base": <resolved training config>, "<dotted key>": <sampled value>, ...}``
(Optuna's dotted names are left flat by Ray, which only unflattens on "/"). The trial applies the
sampled values to the base config, opens (or reopens) its MLflow child run, resumes from its Tune
checkpoint if there is one, and reports every epoch to Tune:

    dev_metric    best dev value (%) so far of the task's selection metric (F1 for multi-label and NER,
                  accuracy for POS: ``TrialSettings.metric``, see :mod:`infnet.task_metric`) -- what Optuna
                  and ASHA see (monotone, and equal to the dev value of the model the trial would deliver
                  if stopped now; during a method's CE pretraining it is the pretraining's best, which
                  ASHA never judges)
    dev_metric_epoch  this epoch's dev value (%);  epoch: epochs done
    main_epoch    epochs done after the method's CE pretraining: ASHA's time axis (pretraining is shared
                  by trials through the pretraining cache and is not what the search varies)
    train_seconds, start_epoch (the epoch this attempt resumed from; 0 for a fresh start)
    node_id       the Ray node this attempt runs on (Tune adds ``node_ip`` and ``hostname`` itself)
    first_step_at unix time of this attempt's first training step: the end of its first epoch minus
                  that epoch's ``epoch_seconds`` (so it lags by the epoch's bookkeeping, milliseconds)
    pretrain      where the CE pretraining came from: computed | hit (another trial's, through the
                  sweep's shared cache, :mod:`infnet.tune.pretrain_claims`) | resumed (from this trial's
                  own checkpoint) | none (no pretraining or no cache)

with a checkpoint (the ``LoopState``) every epoch except the last: the last epoch is reported after
the test evaluation, together with ``test_metric``, ``test_f1_at_0.5`` (multi-label) and ``completed=1`` (ASHA stops a
trial at the report that reaches ``max_t``, so nothing may follow that report).

The dataset arrives as ``data`` (the driver parses or reads it from the Parquet cache once and ships it
through the Ray object store with ``tune.with_parameters``); with ``data=None`` the trial loads it itself
(``run_training`` does), i.e. from the Parquet cache under ``data.cache_dir`` -- a path every node
shares -- and re-parses it only if ``data.cache=false``. The child run is tagged with the attempt's node and device (``infnet.device``, ``infnet.gpu_name``,
``infnet.cuda_visible_devices``): a trial that Ray gave GPUs trains on them or fails with
:class:`~infnet.tune.gpu.CudaUnavailable` (never silently on the CPU).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ray
import torch
from omegaconf import DictConfig, OmegaConf
from ray import tune

from infnet.checkpoint import UnsafeCheckpoint, safe_load
from infnet.config import ConfigError
from infnet.data import MLCDataset, SeqDataset
from infnet.loop import LoopState, TrainingDiverged
from infnet.pretrain_cache import PretrainCache
from infnet.search_space import SearchSpace
from infnet.train import run_training
from infnet.tune.child_runs import ERROR_TAG, RESULT_TAG, STATUS_TAG, ChildRuns
from infnet.tune.gpu import CudaUnavailable, trial_device
from infnet.tune.pretrain_claims import shared_cache_for

BASE_KEY = "base"
CHECKPOINT_FILE = "loop_state.pt"
NODE_ID_TAG = "ray_node_id"
NODE_IP_TAG = "ray_node_ip"
#: Failures that repeat when the trial is retried from its checkpoint: a retry (``tune.max_failures``,
#: meant for lost workers) re-raises them at once instead of training again.
DETERMINISTIC = {"TrainingDiverged": TrainingDiverged, "ConfigError": ConfigError, "CudaUnavailable": CudaUnavailable,
                 "UnsafeCheckpoint": UnsafeCheckpoint}


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares besides data and space (plain data: it pickles)."""

    runs: ChildRuns
    metric: str  # the task's selection metric key (infnet.task_metric): dev/best_<metric> is reported
    crash_after_epoch: int | None = None  # fault injection (tests): first attempt os._exit()s after this epoch
    pretraining: Any = None  # a pretrain_claims.SharedPretraining: where trials share CE pretrainings


class EpochReporter:
    """A trial's hooks into ``run_training``: ``__call__`` (``on_epoch``) reports each epoch to Tune with a
    checkpoint; :meth:`open_pretrain_cache` (``pretrain_cache``) gives it the sweep's shared pretraining cache
    and remembers where the pretraining came from (the ``pretrain`` column)."""

    def __init__(self, max_epochs: int, pretrain_epochs: int, start_epoch: int, crash_after_epoch: int | None,
                 node_id: str, metric: str) -> None:
        self.max_epochs, self.pretrain_epochs, self.metric = max_epochs, pretrain_epochs, metric
        self.start_epoch, self.crash_after_epoch = start_epoch, crash_after_epoch
        self.node_id = node_id
        self.first_step_at: float | None = None
        self.last: dict[str, Any] = {}
        self.pretrain_cache: Any = None  # set by open_pretrain_cache

    def open_pretrain_cache(self, shared: Any, trial_id: str) -> Callable[[DictConfig, Any], PretrainCache | None]:
        """``run_training``'s ``pretrain_cache`` hook, bound to the sweep's ``shared`` pretraining
        (``pretrain_claims.SharedPretraining``) and this trial."""
        def hook(run_cfg: Any, run_data: Any) -> Any:
            self.pretrain_cache = shared_cache_for(run_cfg, run_data, shared, trial_id)
            return self.pretrain_cache

        return hook

    def pretrain_source(self) -> str:
        return getattr(self.pretrain_cache, "source", "none")

    def row(self, metrics: dict[str, float], state: LoopState) -> dict[str, Any]:
        """The Tune result of one epoch (see the module docstring)."""
        return {
            "dev_metric": 100 * metrics[f"dev/best_{self.metric}"],
            "dev_metric_epoch": 100 * metrics[f"dev/{self.metric}"],
            "epoch": state.epoch,
            "main_epoch": max(0, state.epoch - self.pretrain_epochs),
            "train_seconds": state.train_seconds,
            "start_epoch": self.start_epoch,
            "node_id": self.node_id,
            "first_step_at": self.first_step_at,
            "pretrain": self.pretrain_source(),
        }

    def __call__(self, epoch: int, metrics: dict[str, float], state: LoopState) -> None:
        if self.first_step_at is None:  # this attempt's first epoch
            self.first_step_at = time.time() - metrics["epoch_seconds"]
        self.last = self.row(metrics, state)
        if state.epoch >= self.max_epochs:
            return  # reported by ``final`` with the test metrics
        with tempfile.TemporaryDirectory() as d:
            torch.save(state, Path(d) / CHECKPOINT_FILE)
            tune.report(self.last, checkpoint=tune.Checkpoint.from_directory(d))
        if self.crash_after_epoch == state.epoch and self.start_epoch == 0:
            os._exit(1)  # fault injection: the worker dies; Tune retries from the checkpoint just written

    def final(self, result: dict[str, Any]) -> dict[str, Any]:
        """The last Tune result: the last epoch's row with the run's final metrics."""
        return {
            **self.last,
            "dev_metric": result[f"dev_{self.metric}"],
            "test_metric": result[f"test_{self.metric}"],
            "test_f1_at_0.5": result.get("test_f1_at_0.5"),  # multi-label only
            "epoch": result["epochs"],
            "main_epoch": result["epochs"] - self.pretrain_epochs,
            "train_seconds": result["train_seconds"],
            "completed": 1,
        }


def load_checkpoint() -> LoopState | None:
    """The ``LoopState`` of this trial's latest Tune checkpoint, or None on a fresh start.

    Raises:
        UnsafeCheckpoint: the checkpoint is not plain data (it is refused unread: nothing in it runs).
    """
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return read_loop_state(Path(d) / CHECKPOINT_FILE)


def read_loop_state(source: Path | IO[bytes], name: str | None = None) -> LoopState:
    """The ``LoopState`` stored by :class:`EpochReporter` at ``source`` (a path, or a binary file object
    named ``name`` in errors), read as plain data only.

    Raises:
        UnsafeCheckpoint: the file is not plain data, or holds something other than a ``LoopState``.
    """
    name = name or str(source)
    state = safe_load(source, f"trial checkpoint {name}")
    if not isinstance(state, LoopState):
        raise UnsafeCheckpoint(f"refused trial checkpoint {name}: it holds a {type(state).__name__}, not a LoopState")
    return state


def replay_outcome(tags: dict[str, str]) -> bool:
    """When an earlier attempt of this trial already ended (its MLflow run's tags say so): report its
    final result again if it completed (the driver was restarted before Tune recorded the end) and
    return True, or re-raise a deterministic failure instead of training again. False otherwise."""
    status = tags.get(STATUS_TAG)
    if status == "completed":
        tune.report(json.loads(tags[RESULT_TAG]))
        return True
    if status == "error":
        kind, _, message = tags.get(ERROR_TAG, "").partition(": ")
        if kind in DETERMINISTIC:
            raise DETERMINISTIC[kind](f"{message} (raised by an earlier attempt; not retried)")
    return False


def train_trial(config: dict[str, Any], *, data: MLCDataset | SeqDataset | None, space: SearchSpace, settings: TrialSettings) -> None:
    """Ray Tune function trainable (bound with ``tune.with_parameters(data=, space=, settings=)``)."""
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    sampled = {k: v for k, v in config.items() if k != BASE_KEY}
    existing = settings.runs.find(trial_id)
    if existing is not None and replay_outcome(existing.data.tags):
        return
    cfg = space.apply(config[BASE_KEY], sampled)
    container = OmegaConf.to_container(cfg, resolve=True)
    tags = {"infnet.method": str(cfg.method.name), "infnet.data": str(cfg.data.name),
            "infnet.sampled": json.dumps(space.decode(sampled))}
    logger = settings.runs.start(trial_id, ctx.get_trial_name(), container, tags, existing)
    node_id = ray.get_runtime_context().get_node_id()
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    logger.set_tags({NODE_ID_TAG: node_id, NODE_IP_TAG: ray.util.get_node_ip_address(),  # this attempt's node
                     "infnet.cuda_visible_devices": ",".join(gpu_ids)})
    reporter: EpochReporter | None = None
    try:  # from here on, a failure ends the child run as an error (an unloadable checkpoint included)
        state = load_checkpoint()
        reporter = EpochReporter(int(cfg.trainer.max_epochs), int(cfg.method.get("pretrain_epochs", 0)),
                                 state.epoch if state else 0, settings.crash_after_epoch, node_id, settings.metric)
        device, device_tags = trial_device(gpu_ids)
        logger.set_tags(device_tags)
        if gpu_ids or str(cfg.trainer.device) == "auto":
            OmegaConf.update(cfg, "trainer.device", device)
        result = run_training(cfg, data=data, on_epoch=reporter, state=state, run_logger=logger, verbose=False,
                              pretrain_cache=reporter.open_pretrain_cache(settings.pretraining, trial_id))
    except Exception as exc:
        settings.runs.finish(logger.run_id, "error", {ERROR_TAG: f"{type(exc).__name__}: {exc}"[:500]})
        raise
    finally:
        if reporter is not None and reporter.pretrain_cache is not None:
            reporter.pretrain_cache.release()
    final = reporter.final(result)
    settings.runs.finish(logger.run_id, "completed", {RESULT_TAG: json.dumps(final)})
    tune.report(final)


__all__ = ["BASE_KEY", "NODE_ID_TAG", "NODE_IP_TAG", "EpochReporter", "TrialSettings", "train_trial"]
