"""Datasets of the two task kinds, behind one entry point: ``load_data(cfg)``.

- multi-label classification (:mod:`infnet.data.mlc`): MULAN ARFF/XML datasets (bibtex, delicious, ...)
  and a synthetic default; ``load_mlc(cfg)``, keys in :mod:`infnet.data.mlc.load`;
- sequence labelling (:mod:`infnet.data.seq`): CoNLL-2003 / WNUT-2017 NER, UD English-EWT POS, custom
  CoNLL/CoNLL-U files and a synthetic default; ``load_seq(cfg)``, keys in :mod:`infnet.data.seq.load`.

Shared by both: errors (:mod:`~infnet.data.errors`), checksums (:mod:`~infnet.data.hashing`), the cache
folder and verified downloads (:mod:`~infnet.data.files`), the Parquet cache core
(:mod:`~infnet.data.parquet_cache`), seeded splits (:mod:`~infnet.data.splits`) and the held-out outer split
(:mod:`~infnet.data.outer`).

``load_data(cfg)`` dispatches on :func:`task_of` (``cfg.task``: "mlc" | "ner" | "pos", else inferred from
``cfg.kind`` / ``cfg.name``); ``cfg.outer_fraction`` is ignored here (see :mod:`infnet.data.outer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infnet.data.errors import (
    DataConfigError,
    DataDownloadError,
    DataError,
    DataFormatError,
    DataNotFoundError,
)
from infnet.data.mlc.load import load_mlc
from infnet.data.mlc.types import MLCDataset, MLCSplit, SparseRows
from infnet.data.seq.config import SEQ_KINDS, SYNTHETIC_SEQ_NAME, SeqDataConfig
from infnet.data.seq.dataset import SeqDataset, SeqSplit
from infnet.data.seq.load import load_seq
from infnet.data.seq.presets import SEQ_PRESETS
from infnet.data.seq.types import SeqBatch

__all__ = [
    "DataConfigError",
    "DataDownloadError",
    "DataError",
    "DataFormatError",
    "DataNotFoundError",
    "MLCDataset",
    "MLCSplit",
    "SeqBatch",
    "SeqDataset",
    "SeqSplit",
    "SparseRows",
    "load_data",
    "load_mlc",
    "load_seq",
    "task_of",
]
TASKS = ("mlc", "ner", "pos")


def task_of(cfg: Mapping[str, Any] | None) -> str:
    """"mlc" | "ner" | "pos": the task of the dataset ``cfg`` describes, without loading it. An explicit
    ``cfg.task`` is returned as given; otherwise a tagging kind (``synthetic_seq``, ``conll``, ``conllu``)
    or name (``synthetic_seq`` or a tagging preset) means tagging, whose task follows the preset or the
    kind (conllu: POS, else NER), and anything else multi-label."""
    given = {key: cfg[key] for key in cfg} if cfg else {}
    task = given.pop("task", None)
    if task is not None:
        return str(task)
    if given.get("kind") in SEQ_KINDS or given.get("name") in (SYNTHETIC_SEQ_NAME, *SEQ_PRESETS):
        return SeqDataConfig.from_mapping(given).task
    return "mlc"


def load_data(cfg: Mapping[str, Any] | None = None) -> MLCDataset | SeqDataset:
    """Load a multi-label (:func:`load_mlc`) or tagging (:func:`load_seq`) dataset described by ``cfg``
    (the ``task`` key is dropped before the multi-label loader sees the rest)."""
    given = {key: cfg[key] for key in cfg if key != "task"} if cfg else {}
    task = task_of(cfg)
    if task not in TASKS:
        raise DataConfigError(f"data.task must be one of {TASKS}, got {task!r}")
    return load_mlc(given) if task == "mlc" else load_seq({**given, "task": task})
