"""Checkpoints cannot run code: a trial checkpoint or a pretraining-cache entry that carries a pickled
callable is refused before anything in it runs, while genuine ones still load."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from infnet.checkpoint import UnsafeCheckpoint
from infnet.compose import compose
from infnet.loop import LoopState
from infnet.pretrain_cache import FORMAT, PretrainCache
from infnet.train import run_training
from infnet.tune.trainable import read_loop_state


class Payload:
    """Unpickling it runs ``command`` through ``os.system`` (or ``exec``): what a tampered file carries."""

    def __init__(self, marker: Path, via_exec: bool = False) -> None:
        self.marker, self.via_exec = marker, via_exec

    def __reduce__(self):
        if self.via_exec:
            return exec, (f"open({str(self.marker)!r}, 'w').close()",)
        return os.system, (f"touch {self.marker}",)


def _tampered(kind: str, marker: Path) -> object:
    """A whole-file payload, or a genuine-looking LoopState with the payload hidden in its history."""
    payload = Payload(marker, via_exec=kind == "exec")
    return payload if kind != "hidden" else LoopState(epoch=3, history=[{"epoch": 0.0, "dev/f1": payload}])


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: the payloads below do run code under an unrestricted load (so not running is meaningful)."""
    for kind in ("system", "exec"):
        marker = tmp_path / f"ran-{kind}"
        torch.save(_tampered(kind, marker), tmp_path / "file.pt")
        torch.load(tmp_path / "file.pt", weights_only=False)
        assert marker.exists()


@pytest.mark.parametrize("kind", ["system", "exec", "hidden"])
def test_tampered_trial_checkpoint_is_refused_unrun(kind: str, tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "loop_state.pt"
    torch.save(_tampered(kind, marker), path)
    with pytest.raises(UnsafeCheckpoint, match=r"refused to load trial checkpoint .*loop_state\.pt.*(GLOBAL|global)"):
        read_loop_state(path)
    assert not marker.exists()


def test_checkpoint_of_something_else_is_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3}, tmp_path / "loop_state.pt")
    with pytest.raises(UnsafeCheckpoint, match="holds a dict, not a LoopState"):
        read_loop_state(tmp_path / "loop_state.pt")


def test_genuine_trial_checkpoint_loads(tmp_path: Path) -> None:
    """A checkpoint written by a real run (method states, optimiser states, random streams) loads as it was."""
    cfg = compose(["method=ce", "trainer.max_epochs=1", "trainer.num_threads=1", "data.n_train=100", "data.n_dev=50",
                   "data.n_test=50", "model.hidden=[16]", "data.cache=false"])
    run_training(cfg, on_epoch=lambda e, m, state: torch.save(state, tmp_path / "loop_state.pt"), verbose=False)
    reference = torch.load(tmp_path / "loop_state.pt", weights_only=False)  # trusted here: written just above
    state = read_loop_state(tmp_path / "loop_state.pt")
    assert state.epoch == 1 and state.history == reference.history and state.rng["numpy"] == reference.rng["numpy"]
    assert torch.equal(state.rng["torch"], reference.rng["torch"])
    for key, tensor in reference.method_state["infnet"].items():
        assert torch.equal(state.method_state["infnet"][key], tensor), key


def _cache(tmp_path: Path) -> PretrainCache:
    return PretrainCache("k" * 32, tmp_path / "pretrain")


@pytest.mark.parametrize("kind", ["system", "exec", "hidden"])
def test_tampered_pretrain_cache_entry_is_a_miss_and_is_removed_unrun(kind: str, tmp_path: Path, caplog) -> None:
    marker, cache = tmp_path / "ran", _cache(tmp_path)
    Path(cache.dir).mkdir(parents=True)
    torch.save({"state": _tampered(kind, marker), "format": FORMAT}, cache.path)
    with caplog.at_level(logging.WARNING, logger="infnet.pretrain_cache"):
        assert cache.load() is None
    assert not marker.exists()
    assert not Path(cache.path).exists()  # rebuilt by the next run that pretrains
    assert "refused to load pretraining cache entry" in caplog.text


def test_genuine_pretrain_cache_entry_loads(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    state = LoopState(epoch=2, history=[{"epoch": 0.0, "dev/f1": 0.5}], rng={"torch": torch.get_rng_state()},
                      method_state={"infnet": {"w": torch.arange(3.0)}, "main": False})
    cache.save({"state": state})
    entry = cache.load()
    assert entry is not None and entry["format"] == FORMAT and isinstance(entry["state"], LoopState)
    assert entry["state"].history == state.history and torch.equal(entry["state"].method_state["infnet"]["w"], torch.arange(3.0))
    assert torch.equal(entry["state"].rng["torch"], state.rng["torch"])
