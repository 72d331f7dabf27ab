"""A run resumed from its checkpoint is the same run: it ends with the uninterrupted run's metrics.

The run is "killed" (an exception from ``on_epoch``) right after the checkpoint of epoch k is written
the way the Tune trainable writes it (``torch.save`` of the ``LoopState``), then restarted from that
file, read the way the trainable reads it, by a fresh ``run_training`` (which reseeds every generator,
as a new worker process would). CPU, one thread.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from infnet.compose import compose
from infnet.loop import LoopState
from infnet.train import run_training
from infnet.tune.trainable import read_loop_state

SMALL = ["trainer.num_threads=1", "trainer.max_epochs=5", "data.n_train=200", "data.n_dev=100", "data.n_test=100",
         "model.hidden=[32]", "data.cache=false"]
# implicit with every random stream it can draw from: dropout and energy noise (torch), outer batches
# from the held-out split and unlabeled batches (their own samplers), and T=3 inner steps per outer
# step over 5 batches per epoch (the counter and the pending descent check cross epoch boundaries)
IMPLICIT = ["method=implicit", "method.pretrain_epochs=2", "method.inner_steps=3", "method.energy_noise=0.1",
            "data.outer_fraction=0.2", "method.outer_data=heldout", "data.n_unlabeled=100", "method.energy_data=unlabeled"]
# tagging: word dropout (torch) and a pending outer batch that is a SeqBatch (allow-listed in checkpoints)
IMPLICIT_SEQ = ["data=synthetic_seq", "data.n_train=96", "data.n_dev=32", "data.n_test=32", "trainer.max_epochs=3",
                "method=implicit", "method.pretrain_epochs=1", "method.inner_steps=2", "model.seq.lstm_hidden=16",
                "model.seq.word_dim=16", "model.seq.char_dim=8", "model.seq.char_hidden=8"]
TIMINGS = ("train_seconds", "epoch_seconds")


class Killed(Exception):
    """The worker died right after a checkpoint was written."""


def _run_killed_after(cfg, epochs_done: int, checkpoint: Path) -> None:
    """Train until ``epochs_done`` epochs are checkpointed at ``checkpoint``, then die."""

    def on_epoch(epoch: int, metrics: dict[str, float], state: LoopState) -> None:
        torch.save(state, checkpoint)  # what the Tune trainable's EpochReporter writes
        if state.epoch == epochs_done:
            raise Killed

    with pytest.raises(Killed):
        run_training(cfg, on_epoch=on_epoch, verbose=False)


def _without_timings(row: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k not in TIMINGS}


def _assert_same(resumed: dict, plain: dict) -> None:
    assert resumed.keys() == plain.keys()
    for key, value in _without_timings(plain).items():
        if isinstance(value, float) and math.isfinite(value):
            assert resumed[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        else:
            assert resumed[key] == value, key


@pytest.mark.parametrize(("overrides", "epochs_done"), [
    (["method=ce"], 2),
    (IMPLICIT, 1),  # killed during pretraining: resumes into it and through the switch to the main phase
    (IMPLICIT, 3),  # killed in the main phase, between two outer steps
    (IMPLICIT_SEQ, 2),
], ids=["ce", "implicit-pretraining", "implicit-main", "implicit-tagging"])
def test_resumed_run_ends_like_the_uninterrupted_one(overrides: list[str], epochs_done: int, tmp_path: Path) -> None:
    cfg = compose([*SMALL, *overrides])
    history: list[dict[str, float]] = []
    plain = run_training(cfg, on_epoch=lambda e, m, s: history.append(m), verbose=False)

    checkpoint = tmp_path / "loop_state.pt"
    _run_killed_after(cfg, epochs_done, checkpoint)
    state = read_loop_state(checkpoint)
    assert state.epoch == epochs_done and state.rng is not None
    resumed_history: list[dict[str, float]] = []
    resumed = run_training(cfg, state=state, on_epoch=lambda e, m, s: resumed_history.append(m), verbose=False)

    assert len(resumed_history) == len(history) - epochs_done
    for after, before in zip(resumed_history, history[epochs_done:], strict=True):
        _assert_same(after, before)  # every epoch's losses and dev metrics, not only the end
    _assert_same(resumed, plain)
    if "method=implicit" in overrides:
        assert any(k.startswith("train/outer/") for k in history[-1])  # the outer loop did run


def test_checkpoint_of_another_configuration_is_refused(tmp_path: Path) -> None:
    """A state with a sampler stream this run lacks (held-out outer batches) is not silently half-restored."""
    checkpoint = tmp_path / "loop_state.pt"
    _run_killed_after(compose([*SMALL, *IMPLICIT]), 3, checkpoint)
    other = compose([*SMALL, *IMPLICIT, "data.outer_fraction=0.0", "method.outer_data=train"])
    with pytest.raises(ValueError, match=r"random streams \['outer'\]"):
        run_training(other, state=read_loop_state(checkpoint), verbose=False)
