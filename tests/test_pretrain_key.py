"""The CE pretraining cache key (``infnet.pretrain_cache.pretrain_key``) hashes exactly what pretraining reads.

Each key is the one a real run would look up: ``run_training`` loads the data from the composed config
(and holds out ``data.outer_fraction``) and the test's cache factory records the key it is asked for,
then stops the run before training. A data setting that changes the train/dev data, or a model setting
the task's inference network reads, must give a new key (a cache miss); a setting that only says where
the data lies or is cached, or one that only the main phase reads, must give the same key (a hit).
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig
from test_data_helpers import write_generic
from test_data_seq import random_sentences, write_conll

from infnet.compose import compose
from infnet.pretrain_cache import pretrain_key
from infnet.train import run_training

SEQ = ["data=synthetic_seq", "data.n_train=40", "data.n_dev=10", "data.n_test=10", "data.max_train_examples=30"]
MLC = ["data.n_train=60", "data.n_dev=20", "data.n_test=20", "data.n_features=16", "data.n_labels=8"]
MAIN_PHASE = ["method.inner_steps=3", "method.damping=5.0", "method.solver=neumann", "method.lr_energy=0.01",
              "model.energy.label_hidden=5", "model.seq_energy.order_hidden=4"]


class _Looked(Exception):
    """Raised by the recording cache factory: the key the run asked for."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _record(cfg: DictConfig, data: Any) -> None:
    raise _Looked(pretrain_key(cfg, data))


def run_key(overrides: list[str]) -> str:
    """The pretraining cache key of the run ``python -m infnet.train <overrides> trainer.pretrain_cache=true``."""
    return _key(tuple(overrides))


@functools.cache  # the unchanged base configurations are asked for by many cases
def _key(overrides: tuple[str, ...]) -> str:
    with pytest.raises(_Looked) as looked:
        run_training(compose([*overrides, "trainer.pretrain_cache=true"]), verbose=False, pretrain_cache=_record)
    return looked.value.key


@pytest.mark.parametrize(
    "change",
    ["data.subsample_seed=1", "data.max_train_examples=25", "data.max_word_len=4", "data.lowercase=true",
     "data.min_freq=2", "data.seed=1", "data.n_types=3", "data.outer_fraction=0.2", "model.seq.lstm_hidden=20",
     "model.seq.word_dropout=0.1", "trainer.seed=1", "method.pretrain_epochs=5"],
)
def test_tagging_setting_that_pretraining_reads_changes_the_key(change: str) -> None:
    assert run_key([*SEQ, change]) != run_key(SEQ)


@pytest.mark.parametrize("change", [*MAIN_PHASE, "model.hidden=[7]", "model.dropout=0.1", "data.cache=false"])
def test_tagging_setting_that_pretraining_does_not_read_keeps_the_key(change: str, tmp_path: Path) -> None:
    assert run_key([*SEQ, change, f"data.cache_dir={tmp_path}"]) == run_key(SEQ)


@pytest.mark.parametrize("change", ["model.hidden=[8]", "model.dropout=0.1", "data.noise=0.4", "data.seed=3",
                                    "data.n_test=30", "data.outer_fraction=0.2"])
def test_multilabel_setting_that_pretraining_reads_changes_the_key(change: str) -> None:
    assert run_key([*MLC, change]) != run_key(MLC)


@pytest.mark.parametrize("change", [*MAIN_PHASE, "model.seq.lstm_hidden=20", "model.seq.word_dropout=0.1"])
def test_multilabel_setting_that_pretraining_does_not_read_keeps_the_key(change: str, tmp_path: Path) -> None:
    assert run_key([*MLC, change, f"data.cache_dir={tmp_path}"]) == run_key(MLC)


def _conll_dataset(directory: Path, names: tuple[str, str, str]) -> list[str]:
    """Write the same small BIO dataset as ``names`` (train, dev, test) into ``directory``; its overrides."""
    rng = np.random.default_rng(0)
    words = [a + b for a in "abcdefgh" for b in "xyzw"]
    for name, n in zip(names, (40, 10, 10)):
        write_conll(directory / name, random_sentences(rng, n, words))
    files = ",".join(f"{split}:{name}" for split, name in zip(("train", "dev", "test"), names))
    return ["data=wnut17", "data.name=toy", f"data.root={directory}", f"data.files={{{files}}}", "model.seq.word_dim=3"]


def _vectors(path: Path, scale: float) -> Path:
    """A GloVe-format file of 3-dimensional vectors for some of the dataset's words."""
    path.write_text("".join(f"{a}x {scale} {-scale} 0.5\n" for a in "abcdefgh"))
    return path


def test_file_locations_are_not_hashed_but_file_contents_and_vectors_are(tmp_path: Path) -> None:
    here = [*_conll_dataset(tmp_path / "a", ("train.txt", "dev.txt", "test.txt")), f"data.cache_dir={tmp_path / 'ca'}"]
    moved = [*_conll_dataset(tmp_path / "b", ("tr.conll", "de.conll", "te.conll")), f"data.cache_dir={tmp_path / 'cb'}",
             "data.cache=false", "data.url=http://127.0.0.1:9/unused"]
    assert run_key(moved) == run_key(here)
    glove = _vectors(tmp_path / "glove.txt", 1.0)
    copy = shutil.copy(glove, tmp_path / "copy.txt")
    other = _vectors(tmp_path / "other.txt", 2.0)
    with_vectors = run_key([*here, f"data.embeddings={glove}"])
    assert with_vectors != run_key(here)
    assert run_key([*moved, f"data.embeddings={copy}"]) == with_vectors
    assert run_key([*here, f"data.embeddings={other}"]) != with_vectors
    assert run_key([*here, "data.scheme=iob1"]) != run_key(here)
    changed = _conll_dataset(tmp_path / "c", ("train.txt", "dev.txt", "test.txt"))
    write_conll(tmp_path / "c" / "train.txt", [(["ax"], ["O"]), *random_sentences(np.random.default_rng(1), 40, ["bx"])])
    assert run_key([*changed, f"data.cache_dir={tmp_path / 'ca'}"]) != run_key(here)  # other train content


def test_mulan_folder_is_not_hashed_but_the_dev_split_is(tmp_path: Path) -> None:
    write_generic(tmp_path / "a", "toy", sparse=True)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    base = ["data=mulan", "data.name=toy", "data.cache=false"]
    here = run_key([*base, f"data.root={tmp_path / 'a'}"])
    assert run_key([*base, f"data.root={tmp_path / 'b'}"]) == here
    assert run_key([*base, f"data.root={tmp_path / 'a'}", "data.dev_seed=1"]) != here
    assert run_key([*base, f"data.root={tmp_path / 'a'}", "data.dev_fraction=0.2"]) != here
