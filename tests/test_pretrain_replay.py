"""A run whose CE pretraining comes from the pretraining cache logs every epoch to MLflow, as if it had
pretrained itself, while its ``on_epoch`` callback (the Tune trainable's reports and checkpoints) only
sees the epochs it trains. Real MLflow SQLite store, CPU, one thread."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest

from infnet.compose import compose
from infnet.tracking import RunLogger
from infnet.train import run_training

PRETRAIN_EPOCHS, MAX_EPOCHS = 2, 4
TIMINGS = ("epoch_seconds", "train_seconds")


def _tracked_run(uri: str, overrides: list[str], verbose: bool = False) -> tuple[str, list[int]]:
    """One ``run_training`` logged to a new MLflow run; returns its id and the epochs ``on_epoch`` saw."""
    logger = RunLogger(uri, "replay")
    seen: list[int] = []
    run_training(compose(overrides), run_logger=logger, on_epoch=lambda epoch, m, s: seen.append(epoch), verbose=verbose)
    logger.end()
    return logger.run_id, seen


def _histories(client: mlflow.MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the run: key -> [(step, value)] in step order."""
    keys = client.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


def test_cached_run_logs_the_same_metric_history_as_the_uncached_one(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = ["method=implicit", f"method.pretrain_epochs={PRETRAIN_EPOCHS}", f"trainer.max_epochs={MAX_EPOCHS}",
                 "method.inner_steps=3", "trainer.num_threads=1", "data.n_train=200", "data.n_dev=100",
                 "data.n_test=100", "model.hidden=[32]", f"data.cache_dir={tmp_path}", "trainer.pretrain_cache=true"]
    computed_id, computed_epochs = _tracked_run(uri, overrides)
    assert list((tmp_path / "pretrain").glob("*.pt")), "the first run stores its pretraining"
    cached_id, cached_epochs = _tracked_run(uri, overrides, verbose=True)

    assert computed_epochs == list(range(MAX_EPOCHS))
    assert cached_epochs == list(range(PRETRAIN_EPOCHS, MAX_EPOCHS))  # replayed epochs: no Tune report/checkpoint

    client = mlflow.MlflowClient(uri)
    computed, cached = _histories(client, computed_id), _histories(client, cached_id)
    assert cached.keys() == computed.keys()
    per_epoch = [k for k in computed if k not in TIMINGS and len(computed[k]) > 1]
    assert {"dev/f1", "dev/best_f1", "train/loss/ce", "phase_main", "dev/threshold"} <= set(per_epoch)
    for key in computed:
        steps = [s for s, _ in computed[key]]
        assert [s for s, _ in cached[key]] == steps, key
        for (step, want), (_, got) in zip(computed[key], cached[key], strict=True):
            if key in TIMINGS and step >= PRETRAIN_EPOCHS:
                continue  # the main phase is timed anew
            assert math.isfinite(got) and got == pytest.approx(want, rel=1e-6, abs=1e-9), (key, step)
    assert [s for s, _ in cached["dev/f1"]] == list(range(MAX_EPOCHS))  # the learning curve starts at epoch 0
    assert f"[epoch 1/{MAX_EPOCHS} pretrain, cached]" in capsys.readouterr().err
