"""Reuse of cross-entropy pretraining across runs that share it.

Every energy method starts from the same dev-best CE pretraining for a given (data, dev split, model,
pretraining optimiser, epochs, batch size, seed): ``run_training`` reseeds torch after building the
method, so the pretraining does not depend on which method is being trained. A sweep or a multi-method benchmark would otherwise
redo it in every run. The cache stores the dev-best pretrain state together with the loop's bookkeeping
and the torch RNG state at the end of pretraining, so a run that hits the cache continues exactly as if
it had pretrained itself (same state, same random stream); its ``train_seconds`` still include the
pretraining time recorded when the entry was made (the budget is unchanged).

Entries are ``<cache_root>/pretrain/<key>.pt`` written atomically (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from infnet.data.cache import cache_root

FORMAT = "infnet-pretrain-4"  # bump whenever pretraining itself changes
ENERGY_KEYS = ("energy", "seq_energy")  # model config groups that pretraining does not read


def pretrain_key(cfg: DictConfig, data: Any) -> str:
    """SHA-256 over everything pretraining depends on (not on the method's own main-phase settings)."""
    parts = {
        "format": FORMAT,
        "data": data.source_sha256,
        "dev": [getattr(data, "dev_seed", None), getattr(data, "dev_fraction", None), len(data.train), len(data.dev)],
        "model": {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in ENERGY_KEYS},
        "optim": [cfg.method.lr, cfg.method.weight_decay, cfg.method.pretrain_epochs],
        "trainer": [cfg.trainer.batch_size, cfg.trainer.seed, str(cfg.trainer.device)],
        "torch": torch.__version__,
    }
    if cfg.data.get("outer_fraction"):  # the held-out rows depend on it (and on the seed, hashed above)
        parts["outer_fraction"] = float(cfg.data.outer_fraction)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class PretrainCache:
    """Load/save one pretraining result under ``key`` in ``root`` (``<cache>/pretrain``)."""

    def __init__(self, key: str, cache_dir: str | os.PathLike | None = None) -> None:
        self.path = cache_root(cache_dir) / "pretrain" / f"{key}.pt"

    def load(self) -> dict[str, Any] | None:
        """The stored entry, or None if absent or unreadable (a broken file is removed)."""
        if not self.path.exists():
            return None
        try:
            entry = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt, never trusted
            self.path.unlink(missing_ok=True)
            return None
        return entry if isinstance(entry, dict) and entry.get("format") == FORMAT else None

    def save(self, entry: dict[str, Any]) -> None:
        """Store ``entry`` atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        torch.save({**entry, "format": FORMAT}, tmp)
        os.replace(tmp, self.path)


def cache_for(cfg: DictConfig, data: Any) -> PretrainCache | None:
    """The cache to use for this run, or None (no pretraining, or ``trainer.pretrain_cache=false``)."""
    if not cfg.trainer.get("pretrain_cache", False) or int(cfg.method.get("pretrain_epochs", 0)) == 0:
        return None
    return PretrainCache(pretrain_key(cfg, data), cfg.data.get("cache_dir"))


__all__ = ["PretrainCache", "cache_for", "pretrain_key"]
