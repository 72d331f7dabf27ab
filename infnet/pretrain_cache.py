"""Reuse of cross-entropy pretraining across runs that share it.

Every energy method starts from the same dev-best CE pretraining for a given (data, dev split, model,
pretraining optimiser, epochs, batch size, seed): ``run_training`` reseeds torch after building the
method, so the pretraining does not depend on which method is being trained. A sweep or a multi-method benchmark would otherwise
redo it in every run. The cache stores the dev-best pretrain state together with the loop's bookkeeping
and the torch RNG state at the end of pretraining, so a run that hits the cache continues exactly as if
it had pretrained itself (same state, same random stream); its ``train_seconds`` still include the
pretraining time recorded when the entry was made (the budget is unchanged).

Entries are ``<root>/<key>.pt``, written atomically (temp file + move; an S3 put is atomic by itself)
through ``pyarrow.fs``, so ``root`` is a local folder (``<data.cache_dir>/pretrain`` for single runs) or
a URI every node of a cluster reaches (``s3://...``: a sweep shares its pretrainings through its storage,
see :mod:`infnet.tune.pretrain_claims`).
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path
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
    """Load/save one pretraining result, ``<root>/<key>.pt`` (``root``: a local folder or a URI)."""

    def __init__(self, key: str, root: str | Path) -> None:
        import pyarrow.fs

        root = str(root) if "://" in str(root) else str(Path(root).expanduser().resolve())
        self.fs, base = pyarrow.fs.FileSystem.from_uri(root)
        self.dir = base.rstrip("/")
        self.path = f"{self.dir}/{key}.pt"

    def load(self) -> dict[str, Any] | None:
        """The stored entry, or None if absent or unreadable (a broken file is removed)."""
        import pyarrow.fs

        if self.fs.get_file_info(self.path).type != pyarrow.fs.FileType.File:
            return None
        try:
            with self.fs.open_input_stream(self.path) as f:
                entry = torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt, never trusted
            self.fs.delete_file(self.path)
            return None
        return entry if isinstance(entry, dict) and entry.get("format") == FORMAT else None

    def save(self, entry: dict[str, Any]) -> None:
        """Store ``entry`` atomically."""
        buffer = io.BytesIO()
        torch.save({**entry, "format": FORMAT}, buffer)
        self.fs.create_dir(self.dir, recursive=True)
        tmp = f"{self.dir}/.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(buffer.getvalue())
        self.fs.move(tmp, self.path)


def uses_pretrain_cache(cfg: DictConfig) -> bool:
    """Whether a run of ``cfg`` pretrains and may share it (``trainer.pretrain_cache``)."""
    return bool(cfg.trainer.get("pretrain_cache", False)) and int(cfg.method.get("pretrain_epochs", 0)) > 0


def cache_for(cfg: DictConfig, data: Any) -> PretrainCache | None:
    """The node-local cache of a single run, or None (no pretraining, or ``trainer.pretrain_cache=false``)."""
    if not uses_pretrain_cache(cfg):
        return None
    return PretrainCache(pretrain_key(cfg, data), cache_root(cfg.data.get("cache_dir")) / "pretrain")


__all__ = ["PretrainCache", "cache_for", "pretrain_key", "uses_pretrain_cache"]
