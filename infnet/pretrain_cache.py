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
import logging
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs
import torch
from omegaconf import DictConfig, OmegaConf

from infnet.checkpoint import safe_load
from infnet.data.files import cache_root
from infnet.data.mlc.types import MLCDataset
from infnet.sweep_layout import absolute_storage, filesystem

FORMAT = "infnet-pretrain-5"  # bump whenever pretraining itself or the entry's layout changes
ENERGY_KEYS = ("energy", "seq_energy")  # model config groups that pretraining does not read
log = logging.getLogger(__name__)
SEQ_MODEL_KEY = "seq"  # the tagging inference network's group (multi-label pretraining does not read it)
# data keys that say where the data comes from or how it is stored, not what pretraining reads:
UNREAD_DATA_KEYS = (
    "root",        # where the source files lie: what is in them is data.source_sha256
    "files",       # which file holds each split: ditto (tagging hashes the files per split)
    "url",         # where a download comes from: the downloaded files are verified, their checksums are source_sha256
    "sha256",      # expected checksums: the files actually read are source_sha256
    "cache_dir",   # where the parsed data is cached
    "cache",       # whether it is cached: a cached dataset equals the freshly parsed one
    "embeddings",  # the path of the word vectors: the vectors read are hashed from data.embeddings instead
    "n_unlabeled", # unlabeled inputs come from their own random stream and only the main phase reads them
)


def pretrain_key(cfg: DictConfig, data: Any) -> str:
    """SHA-256 over everything pretraining depends on (not on the method's own main-phase settings).

    ``data`` is the loaded dataset the run trains on (after ``data.outer_fraction`` was held out);
    the data settings are hashed as well, since the source checksum alone does not say how it was read.
    """
    parts = {
        "format": FORMAT,
        "data": data.source_sha256,
        "data_settings": _data_settings(cfg),
        "embeddings": _tensor_sha256(getattr(data, "embeddings", None)),
        "dev": [getattr(data, "dev_seed", None), getattr(data, "dev_fraction", None), len(data.train), len(data.dev)],
        "model": _model_settings(cfg, data),
        "optim": [cfg.method.lr, cfg.method.weight_decay, cfg.method.pretrain_epochs],
        "trainer": [cfg.trainer.batch_size, cfg.trainer.seed, str(cfg.trainer.device)],
        "torch": torch.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _data_settings(cfg: DictConfig) -> dict[str, Any]:
    """The ``data`` settings that change the train/dev data pretraining reads (set ones only: None means
    the loader's default, as an absent key does); ``outer_fraction`` among them (with the seed, hashed
    separately, it picks the held-out rows)."""
    settings = OmegaConf.to_container(cfg.data, resolve=True)
    return {k: v for k, v in settings.items() if k not in UNREAD_DATA_KEYS and v is not None}


def _model_settings(cfg: DictConfig, data: Any) -> dict[str, Any]:
    """The ``model`` settings the inference network of ``data``'s task reads: ``model.seq`` for tagging,
    every group but the energies and ``model.seq`` for multi-label data."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if not isinstance(data, MLCDataset):
        return {SEQ_MODEL_KEY: model.get(SEQ_MODEL_KEY)}
    return {k: v for k, v in model.items() if k not in (*ENERGY_KEYS, SEQ_MODEL_KEY)}


def _tensor_sha256(tensor: torch.Tensor | None) -> str | None:
    """SHA-256 of a tensor's values, shape and dtype (None for None): the pretrained word vectors (n_words, dim)."""
    if tensor is None:
        return None
    values = tensor.detach().cpu().contiguous()
    header = f"{values.dtype}{tuple(values.shape)}".encode()
    return hashlib.sha256(header + values.view(torch.uint8).numpy().tobytes()).hexdigest()


class PretrainCache:
    """Load/save one pretraining result, ``<root>/<key>.pt`` (``root``: a local folder or a URI)."""

    def __init__(self, key: str, root: str | Path) -> None:
        self.fs, base = filesystem(absolute_storage(str(root)))
        self.dir = base.rstrip("/")
        self.path = f"{self.dir}/{key}.pt"

    def load(self) -> dict[str, Any] | None:
        """The stored entry, or None if absent or unreadable (a broken file is removed). Entries are
        read as plain data only (:func:`infnet.checkpoint.safe_load`): one that is not is refused
        without running anything in it, logged, and removed like a broken one."""
        if self.fs.get_file_info(self.path).type != pyarrow.fs.FileType.File:
            return None
        try:
            with self.fs.open_input_stream(self.path) as f:
                entry = safe_load(io.BytesIO(f.read()), f"pretraining cache entry {self.path}")
        except Exception as exc:  # noqa: BLE001 - any unreadable entry is rebuilt, never trusted
            log.warning("pretraining cache entry %s is unreadable and was removed: %s", self.path, exc)
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
