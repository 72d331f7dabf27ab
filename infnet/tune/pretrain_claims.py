"""One CE pretraining per sweep, on any number of nodes: the sweep's shared pretraining cache.

Trials of a sweep that share a pretraining config (:func:`infnet.pretrain_cache.pretrain_key`) store it
under the sweep storage's ``pretrain_cache/`` folder (``s3://...`` on a cluster, reached by every node),
not on one node's disk. Which trial computes it is decided by :class:`PretrainClaims`, a named Ray actor
the driver starts: the first trial to ask claims the key and pretrains; the others wait (polling) until
the entry appears, then load it. The claimant renews its claim every ``HEARTBEAT_S`` seconds from a
thread; a claim not renewed for ``STALE_S`` seconds (its node died) or released without an entry (its
trial failed) passes to the next trial that asks. Each trial reports where its pretraining came from
(``pretrain``: ``computed`` | ``hit`` | ``resumed``, the last for a trial restored from a checkpoint of
its own), which the sweep's table and summary count. This module imports Ray; import it lazily.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import ray
from omegaconf import DictConfig

from infnet.pretrain_cache import PretrainCache, pretrain_key, uses_pretrain_cache
from infnet.sweep_layout import PRETRAIN_CACHE_DIR, join

HEARTBEAT_S = 5.0
STALE_S = 60.0
POLL_S = 1.0


@ray.remote(num_cpus=0)
class PretrainClaims:
    """Who is computing which pretraining: ``key -> (trial id, time of its last heartbeat)``."""

    def __init__(self, stale_s: float = STALE_S) -> None:
        self.stale_s = stale_s
        self.claims: dict[str, tuple[str, float]] = {}

    def claim(self, key: str, owner: str) -> bool:
        """True if ``owner`` may compute ``key`` now (unclaimed, stale, or already its own)."""
        holder = self.claims.get(key)
        if holder is None or holder[0] == owner or time.monotonic() - holder[1] > self.stale_s:
            self.claims[key] = (owner, time.monotonic())
            return True
        return False

    def heartbeat(self, key: str, owner: str) -> None:
        if self.claims.get(key, ("",))[0] == owner:
            self.claims[key] = (owner, time.monotonic())

    def release(self, key: str, owner: str) -> None:
        if self.claims.get(key, ("",))[0] == owner:
            del self.claims[key]


@dataclass(frozen=True)
class SharedPretraining:
    """Where a sweep's trials share pretrainings (plain data: it pickles into the trials)."""

    root: str         # <tune.storage_path>/pretrain_cache
    claims_name: str  # the PretrainClaims actor's name


def start_claims(storage_path: str, sweep_name: str) -> tuple[SharedPretraining, Any]:
    """Start (or find) the sweep's :class:`PretrainClaims` actor; returns the trials' settings and the
    actor handle (kept by the driver: the actor lives as long as the driver's Ray job)."""
    name = f"infnet-pretrain-claims-{sweep_name}"
    actor = PretrainClaims.options(name=name, get_if_exists=True).remote()
    return SharedPretraining(join(storage_path, PRETRAIN_CACHE_DIR), name), actor


class SharedPretrainCache(PretrainCache):
    """A :class:`PretrainCache` in shared storage whose ``load`` waits for a pretraining another trial
    is computing, and claims it when nobody is. ``source`` says what happened (module docstring)."""

    def __init__(self, key: str, shared: SharedPretraining, owner: str) -> None:
        super().__init__(key, shared.root)
        self.key, self.owner = key, owner
        self.claims = ray.get_actor(shared.claims_name)
        self.source = "resumed"
        self._stop = threading.Event()

    def load(self) -> dict[str, Any] | None:
        """The entry (waiting while another trial computes it), or None once this trial holds the claim."""
        while (entry := super().load()) is None:
            if ray.get(self.claims.claim.remote(self.key, self.owner)):
                self.source = "computed"
                threading.Thread(target=self._heartbeat, daemon=True).start()
                return None
            time.sleep(POLL_S)
        self.source = "hit"
        return entry

    def save(self, entry: dict[str, Any]) -> None:
        super().save(entry)
        self.release()

    def release(self) -> None:
        """Give up this trial's claim (after saving, or when the trial failed); a no-op otherwise."""
        if self.source == "computed" and not self._stop.is_set():
            self._stop.set()
            ray.get(self.claims.release.remote(self.key, self.owner))

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.claims.heartbeat.remote(self.key, self.owner)


def shared_cache_for(cfg: DictConfig, data: Any, shared: SharedPretraining | None, owner: str) -> SharedPretrainCache | None:
    """The trial's shared pretraining cache, or None (no pretraining, ``trainer.pretrain_cache=false``,
    or no shared storage)."""
    if shared is None or not uses_pretrain_cache(cfg):
        return None
    return SharedPretrainCache(pretrain_key(cfg, data), shared, owner)


__all__ = ["PretrainClaims", "SharedPretrainCache", "SharedPretraining", "shared_cache_for", "start_claims"]
