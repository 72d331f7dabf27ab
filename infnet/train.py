"""``python -m infnet.train``: one training run (the same function Ray Tune runs as a trial).

Examples::

    python -m infnet.train                                   # synthetic data, implicit method
    python -m infnet.train data=bibtex data.root=../shared/data/mulan/bibtex method=ce
    python -m infnet.train method=implicit method.solver=neumann method.iters=5 trainer.seed=1

Progress goes to stderr; the last stdout line is one JSON object with the run's results.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from infnet.cli import parse_command_line, run_cli
from infnet.config import ConfigError, validate
from infnet.data import load_data
from infnet.data.outer import hold_out
from infnet.loop import LoopState, fit, predict_test, score_test
from infnet.methods import MethodContext, build_method
from infnet.pretrain_cache import PretrainCache, cache_for
from infnet.tasks import build_task
from infnet.tracking import RunLogger, resolve_uri

log = logging.getLogger("infnet.train")


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class RandomBatches:
    """A batch sampler (``infnet.methods.base.BatchSampler``): each call returns a random batch of
    ``split`` (x, y (B, *S), indices (B,)) drawn with its own generator ``rng`` (which the training
    loop checkpoints)."""

    split: Any
    batch_size: int
    rng: np.random.Generator
    device: torch.device

    def __call__(self) -> tuple[Any, torch.Tensor, np.ndarray]:
        idx = self.rng.choice(len(self.split), size=min(self.batch_size, len(self.split)), replace=False)
        x, y = self.split.batch(idx)
        return x.to(self.device), y.to(self.device), idx


def make_sampler(split: Any, batch_size: int, seed: int, device: torch.device, stream: int = 7919) -> RandomBatches:
    """A sampler of random batches of ``split`` (x, y (B, *S), indices (B,)) with its own generator,
    seeded by ``seed`` and ``stream`` (different streams give independent samplers)."""
    return RandomBatches(split, batch_size, np.random.default_rng([seed, stream]), device)


def progress_line(epoch: int, max_epochs: int, metrics: dict[str, float], metric: str = "f1", cached: bool = False) -> str:
    """One line of progress for an epoch's ``metrics`` (``dev/<metric>`` is the selection metric;
    ``cached``: an epoch replayed from the pretraining cache)."""
    phase = ("main" if metrics.get("phase_main") else "pretrain") + (", cached" if cached else "")
    losses = " ".join(f"{k.removeprefix('train/loss/')}={v:.4g}" for k, v in metrics.items() if k.startswith("train/loss/"))
    thr = f" thr={metrics['dev/threshold']:.3f}" if "dev/threshold" in metrics else ""
    return (
        f"[epoch {epoch + 1}/{max_epochs} {phase}] {losses} dev_{metric}={100 * metrics[f'dev/{metric}']:.2f} "
        f"(best {100 * metrics[f'dev/best_{metric}']:.2f}){thr} {metrics['epoch_seconds']:.1f}s"
    )


def run_training(
    cfg: DictConfig,
    data: Any | None = None,
    on_epoch: Callable[[int, dict[str, float], LoopState], None] | None = None,
    state: LoopState | None = None,
    run_logger: Any | None = None,
    verbose: bool = True,
    pretrain_cache: Callable[[DictConfig, Any], PretrainCache | None] = cache_for,
) -> dict[str, Any]:
    """Train, select on dev, evaluate on test; log to ``run_logger`` (an MLflow ``RunLogger``) if given.
    ``pretrain_cache(cfg, data)`` gives the CE pretraining cache (default: the node-local one, if
    ``trainer.pretrain_cache``; sweeps share theirs through their storage). ``on_epoch(epoch, metrics,
    state)`` follows every trained epoch; epochs taken from the pretraining cache are only logged (progress
    line, ``run_logger``), with the metrics the run that computed them logged.

    Returns the result dict (also the JSON line of the CLI). Raises ``TrainingDiverged`` on NaN.
    """
    validate(cfg)
    t = cfg.trainer
    seed_everything(t.seed)
    if t.get("num_threads"):
        torch.set_num_threads(int(t.num_threads))
    device = pick_device(t.device)
    if data is None:
        data = load_data(cfg.data)
    outer_fraction = float(cfg.data.get("outer_fraction") or 0.0)
    data, outer = hold_out(data, outer_fraction, t.seed)
    task = build_task(data, cfg.model)
    sampler = make_sampler(data.train, t.batch_size, t.seed, device)
    streams = {"train": sampler.rng}
    outer_sampler = None
    if cfg.method.get("outer_data", "train") == "heldout":
        outer_sampler = make_sampler(outer, t.batch_size, t.seed, device, stream=7927)
        streams["outer"] = outer_sampler.rng
    unlabeled_sampler = None
    energy_data = cfg.method.get("energy_data", "train")
    has_unlabeled = getattr(data, "unlabeled", None) is not None
    if energy_data == "unlabeled" or (energy_data == "auto" and has_unlabeled):
        if not has_unlabeled:
            raise ConfigError(f"method.energy_data=unlabeled needs unlabeled inputs; data={cfg.data.name} has none "
                              "(synthetic data: set data.n_unlabeled)")
        unlabeled_sampler = make_sampler(data.unlabeled, t.batch_size, t.seed, device, stream=7933)
        streams["unlabeled"] = unlabeled_sampler.rng
    method = build_method(MethodContext(task, cfg.model, cfg.method, device, sampler, data.train, outer_sampler,
                                        unlabeled_sampler))
    torch.manual_seed(t.seed)  # the same random stream from here on, whichever modules the method built

    def log_epoch(epoch: int, metrics: dict[str, float], cached: bool = False) -> None:
        """Progress line and MLflow metrics of one epoch (``cached``: replayed from the pretraining cache)."""
        if verbose:
            print(progress_line(epoch, t.max_epochs, metrics, task.metric, cached), file=sys.stderr, flush=True)
        if run_logger is not None:
            run_logger.log_metrics(metrics, step=epoch)

    def epoch_hook(epoch: int, metrics: dict[str, float], st: LoopState) -> None:
        log_epoch(epoch, metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics, st)

    def replay_hook(epoch: int, metrics: dict[str, float]) -> None:
        log_epoch(epoch, metrics, cached=True)  # logged only: ``on_epoch`` (Tune's reports, checkpoints) never sees it

    cache = pretrain_cache(cfg, data)
    state = fit(method, data, t.max_epochs, t.batch_size, t.seed, device, state=state, on_epoch=epoch_hook,
                pretrain_cache=cache, streams=streams, on_replay=replay_hook)
    metric = task.metric
    result: dict[str, Any] = {
        "method": cfg.method.name,
        "data": data.name,
        "task": task.name,
        "seed": int(t.seed),
        f"dev_{metric}": 100 * state.best_dev_metric,
        "best_epoch": state.best_epoch,
        "epochs": state.epoch,
        "train_seconds": state.train_seconds,
        "device": str(device),
        "n_train": len(data.train),
        "outer_fraction": outer_fraction,
        "n_outer": 0 if outer is None else len(outer),
        "n_unlabeled": len(data.unlabeled) if getattr(data, "unlabeled", None) is not None else 0,
    }
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), {})
    result.update({k.replace("/", "_"): v for k, v in best.items() if k.startswith("energy/")})
    if state.best_decision is not None:
        result["threshold"] = state.best_decision
    scores = predict_test(method, data, state, device)
    test = score_test(method, data, state, scores)
    result.update({k.replace("/", "_"): 100 * v for k, v in test.items()})
    if run_logger is not None:
        best = {f"best/dev_{metric}": state.best_dev_metric, "train_seconds": state.train_seconds}
        run_logger.log_metrics({**test, **best}, step=state.epoch)
        run_logger.log_dict(state.history, "history.json")
        if cfg.tracking.get("log_model", True):
            run_logger.log_torch(state.best_state, "best_model.pt")
        with tempfile.TemporaryDirectory() as folder:
            name = task.write_predictions(Path(folder), data.test, scores.cpu(), state.best_decision)
            run_logger.log_file(Path(folder) / name, "test")
    return result


def main_with_tracking(cfg: DictConfig, data: Any | None = None) -> dict[str, Any]:
    """Run ``run_training`` inside an MLflow run (``tracking.uri``/``tracking.experiment``).

    The data are loaded first: a missing or malformed data file fails before any MLflow run exists. The
    run ends ``FINISHED``, or ``FAILED`` (and the exception propagates) if training raised.
    """
    validate(cfg)
    data = load_data(cfg.data) if data is None else data
    uri = resolve_uri(cfg.tracking.uri)
    container = OmegaConf.to_container(cfg, resolve=True)
    logger = RunLogger(
        uri, cfg.tracking.experiment, run_name=cfg.tracking.run_name or f"{cfg.method.name}-{cfg.data.name}-s{cfg.trainer.seed}",
        params=container, tags={"infnet.method": cfg.method.name, "infnet.data": cfg.data.name, "infnet.entry": "train"},
    )
    logger.log_dict(container, "config.yaml")
    try:
        result = run_training(cfg, data=data, run_logger=logger)
    except BaseException:
        logger.end("FAILED")
        raise
    logger.end("FINISHED")
    return {**result, "mlflow_run_id": logger.run_id, "mlflow_tracking_uri": uri}


def _cli_main() -> None:
    """Train once per config on the command line (several with Hydra's ``--multirun``); one JSON line each."""
    configs = parse_command_line("infnet.train", "config", lambda cfg: cfg)
    logging.basicConfig(level=logging.WARNING)
    for cfg in configs:
        print(json.dumps(main_with_tracking(cfg)), flush=True)


if __name__ == "__main__":
    run_cli("infnet.train", _cli_main)
