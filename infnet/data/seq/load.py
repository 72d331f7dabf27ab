"""``load_seq(cfg)``: tagging datasets (CoNLL-2003, WNUT-2017, UD English-EWT, custom files, synthetic).

``cfg`` keys (a None value means the default):

- ``name`` ("synthetic_seq"): "synthetic_seq", a preset ("conll2003", "wnut17", "ud_ewt") or the
  name of your own dataset (then set ``kind``, ``root`` and ``files``).
- ``task`` ("ner" | "pos"), ``kind`` ("synthetic_seq" | "conll" | "conllu"): inferred from the
  preset, else from the kind (conll -> ner, conllu -> pos).
- ``root`` (None): the directory holding the files, or a parent of it (for the presets also the
  shared data folder: ``<root>/ner/conll2003``, ``<root>/pos/ud_english_ewt``, ...).  ``<file>.gz``
  is read when ``<file>`` is absent.  None downloads wnut17 / ud_ewt from their public GitHub
  repositories into the cache (SHA-256 verified); CoNLL-2003 cannot be downloaded.
- ``files`` (None): {train, dev, test} -> file name, overriding the preset's.
- ``scheme`` ("iob1" | "bio"): tag scheme of NER files (conll2003: iob1, wnut17 and custom: bio);
  tags are converted to BIO inside and back with ``SeqDataset.to_source_scheme``.
- ``max_train_examples`` (None): keep a random subset of that many train sentences (drawn with
  ``subsample_seed``, 0), recorded in ``meta["subsample"]``; vocabularies stay those of the full train split.
- ``min_freq`` (1), ``lowercase`` (False): word vocabulary (see :mod:`infnet.data.seq.vocab`).
- ``max_word_len`` (None): cap on characters per word in batches.
- ``embeddings`` (None): path of a GloVe-format vector file (see :mod:`infnet.data.seq.embeddings`).
- ``cache`` (True), ``cache_dir`` (None -> ``$INFNET_CACHE`` or ``~/.cache/infnet``): Parquet cache
  keyed by the source files' checksums and the vocabulary settings.
- ``url`` (None), ``sha256`` (None): download base URL and file name -> checksum overrides.
- synthetic only: ``n_train`` (2000), ``n_dev`` (500), ``n_test`` (500), ``n_types`` (4), ``seed`` (0);
  see :mod:`infnet.data.seq.synthetic`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infnet.data.errors import DataConfigError
from infnet.data.files import cache_root, fetch
from infnet.data.hashing import sha256_file, sha256_json
from infnet.data.seq.build import BUILD_VERSION, SPLITS, build_seq_dataset
from infnet.data.seq.cache import SEQ_CACHE_FORMAT, cached_seq_dataset, seq_cache_path
from infnet.data.seq.config import SeqDataConfig
from infnet.data.seq.conll import read_conll, to_bio
from infnet.data.seq.conllu import read_conllu
from infnet.data.seq.corpus import Corpus
from infnet.data.seq.dataset import SeqDataset
from infnet.data.seq.embeddings import embedding_matrix, read_vectors
from infnet.data.seq.presets import SeqSpec
from infnet.data.seq.synthetic import synthetic_seq_corpora
from infnet.data.seq.vocab import Vocab, word_form

log = logging.getLogger(__name__)


def load_seq(cfg: Mapping[str, Any] | None = None) -> SeqDataset:
    """Load the tagging dataset described by ``cfg`` (keys in the module docstring).

    Returns a SeqDataset whose splits batch into SeqBatch (words (B, T), chars (B, T, C), mask
    (B, T)) and one-hot y (B, T, K).
    """
    config = SeqDataConfig.from_mapping(cfg or {})
    if config.kind == "synthetic_seq":
        dataset = _build(config, *synthetic_seq_corpora(**config.synthetic_params()))
    else:
        dataset = _from_files(config)
    if config.embeddings and dataset.embeddings is None:  # read from the cache, which keeps no vectors
        dataset = replace(dataset, embeddings=_embeddings(config.embeddings, dataset.words))
    if config.max_train_examples is not None:
        dataset = _subsample(dataset, config.max_train_examples, config.subsample_seed)
    if config.max_word_len is not None:
        splits = {s: replace(getattr(dataset, s), max_word_len=config.max_word_len) for s in SPLITS}
        dataset = replace(dataset, **splits)
    return dataset


def _from_files(config: SeqDataConfig) -> SeqDataset:
    """The dataset of the configured files: from the cache, else parsed (and cached)."""
    spec = config.spec()
    paths, file_sha256 = _locate(spec, config)

    def build() -> SeqDataset:
        corpora = {split: _read_corpus(spec, paths[split]) for split in SPLITS}
        meta = {"format": spec.kind, "files": {paths[split].name: file_sha256[split] for split in SPLITS}}
        if spec.task == "ner":
            bio = {split: to_bio(corpora[split], spec.scheme) for split in SPLITS}
            corpora = {split: corpus for split, (corpus, _) in bio.items()}
            meta["tags_rewritten_to_bio"] = {paths[split].name: changed for split, (_, changed) in bio.items()}
        return _build(config, corpora, meta, sha256_json(file_sha256))

    if not config.cache:
        return build()
    description = {
        "cache_format": SEQ_CACHE_FORMAT,
        "builder": BUILD_VERSION,
        **{key: getattr(config, key) for key in ("name", "kind", "task", "scheme", "min_freq", "lowercase")},
        "files": file_sha256,
        "embeddings": sha256_file(config.embeddings) if config.embeddings else None,
    }
    key = sha256_json(description)
    return cached_seq_dataset(seq_cache_path(cache_root(config.cache_dir), spec.name, key), key, build)


def _build(config: SeqDataConfig, corpora: dict[str, Corpus], meta: dict, source_sha256: str) -> SeqDataset:
    """The dataset of ``corpora`` with the configured vocabulary; pretrained vectors (if any) are read
    for the forms of every token of every split."""
    vectors = None
    if config.embeddings:
        tokens = {token for corpus in corpora.values() for token in corpus.tokens}
        vectors = read_vectors(config.embeddings, {word_form(token, config.lowercase) for token in tokens})
    vocab = {"min_freq": config.min_freq, "lowercase": config.lowercase, "vectors": vectors}
    return build_seq_dataset(config.name, config.task, config.scheme, corpora, source_sha256, meta, **vocab)


def _embeddings(path: str, words: Vocab) -> torch.Tensor:
    """The embedding matrix (n_words, dim) float32 of ``words`` from the vector file at ``path``."""
    matrix, _ = embedding_matrix(read_vectors(path, words.items), words)
    return torch.from_numpy(matrix)


def _read_corpus(spec: SeqSpec, path: Path) -> Corpus:
    """The corpus of one file of ``spec`` with the file's own tags."""
    return read_conllu(path) if spec.kind == "conllu" else read_conll(path)


def _locate(spec: SeqSpec, config: SeqDataConfig) -> tuple[dict[str, Path], dict[str, str]]:
    """(split -> path, split -> SHA-256) of the source files, downloading them if there is no root."""
    if config.root is not None:
        paths = spec.locate(Path(config.root).expanduser())
        sha256 = {split: sha256_file(path) for split, path in paths.items()}
        differing = sorted(p.name for s, p in paths.items() if spec.sha256.get(p.name, sha256[s]) != sha256[s])
        if differing:
            log.warning("%s: files %s differ from the known checksums; using them anyway", spec.name, differing)
        return paths, sha256
    if spec.url is None:
        raise DataConfigError(
            f"{spec.name} cannot be downloaded (CoNLL-2003 is not openly licensed); set data.root=<directory with "
            f"{', '.join(spec.files.values())}>"
        )
    missing = [name for name in spec.files.values() if name not in spec.sha256]
    if missing:
        raise DataConfigError(f"{spec.name}: no checksum for {missing}; set data.sha256 or data.root")
    directory = cache_root(config.cache_dir) / "downloads" / "seq" / spec.name
    paths = {
        split: fetch(f"{spec.url.rstrip('/')}/{name}", directory / name, spec.sha256[name])
        for split, name in spec.files.items()
    }
    return paths, {split: spec.sha256[name] for split, name in spec.files.items()}


def _subsample(dataset: SeqDataset, n: int, seed: int) -> SeqDataset:
    """``dataset`` with a random subset of ``n`` train sentences (all if the split is smaller), in file order."""
    total = len(dataset.train)
    keep = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    meta = {**dataset.meta, "subsample": {"max_train_examples": n, "seed": seed, "from": total, "kept": len(keep)}}
    return replace(dataset, train=dataset.train.take(keep), meta=meta)
