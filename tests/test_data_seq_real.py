"""Real tagging files from ../shared/data (skipped when that folder is absent): counts from its README."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import SHARED_DATA

from infnet.data import SeqDataset, load_seq
from infnet.data.seq.conll import read_conll
from infnet.data.seq.presets import SEQ_PRESETS
from infnet.metrics import span_f1

# name -> (sentences, tokens) per split, from ../shared/data/README.md
SIZES = {
    "conll2003": ((14041, 203621), (3250, 51362), (3453, 46435)),
    "wnut17": ((3394, 62730), (1009, 15733), (1287, 23394)),
    "ud_ewt": ((12544, 204577), (2001, 25147), (2077, 25094)),
}


def shared_root() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seq-real-cache")


def load(name: str, cache_dir: Path, **extra: object) -> SeqDataset:
    return load_seq({"name": name, "root": str(shared_root()), "cache_dir": str(cache_dir), **extra})


def entity_counts(split_tags: list[list[str]]) -> Counter:
    return Counter(tag[2:] for tags in split_tags for tag in tags if tag.startswith("B-"))


@pytest.mark.parametrize("name", sorted(SIZES))
def test_split_sizes_match_the_readme(cache_dir: Path, name: str) -> None:
    ds = load(name, cache_dir)
    sizes = tuple((len(s), len(s.word_ids)) for s in (ds.train, ds.dev, ds.test))
    assert sizes == SIZES[name]
    assert ds.meta["files"] == {n: SEQ_PRESETS[name].sha256[n] for n in ds.meta["files"]}  # known checksums


def test_conll2003_entities_and_iob1_round_trip(cache_dir: Path) -> None:
    ds = load("conll2003", cache_dir)
    assert (ds.task, ds.scheme, ds.n_labels) == ("ner", "iob1", 9)
    expected = {
        "train": {"PER": 6600, "LOC": 7140, "ORG": 6321, "MISC": 3438},
        "dev": {"PER": 1842, "LOC": 1837, "ORG": 1341, "MISC": 922},
        "test": {"PER": 1617, "LOC": 1668, "ORG": 1661, "MISC": 702},
    }
    for split, counts in expected.items():
        assert entity_counts(getattr(ds, split).tags) == counts
    # back to IOB1: identical to the file except eng.train's two B-MISC that follow O (lines 152428, 175436)
    source = read_conll(SHARED_DATA / "ner" / "conll2003" / "eng.train")
    written = [tag for tags in ds.to_source_scheme(ds.train.tags) for tag in tags]
    differ = np.flatnonzero(np.array(written) != np.array(source.tags))
    assert source.lines[differ].tolist() == [152428, 175436]
    assert ds.meta["tags_rewritten_to_bio"]["eng.train"] == 23427


def test_wnut17_entities(cache_dir: Path) -> None:
    ds = load("wnut17", cache_dir)
    assert ds.scheme == "bio" and ds.n_labels == 13
    train = entity_counts(ds.train.tags)
    assert train == {
        "person": 660, "location": 548, "group": 264, "corporation": 221, "product": 142, "creative-work": 140
    }
    assert (sum(entity_counts(ds.dev.tags).values()), sum(entity_counts(ds.test.tags).values())) == (836, 1079)
    assert set(ds.meta["tags_rewritten_to_bio"].values()) == {0}  # already proper BIO


def test_ud_ewt_upos(cache_dir: Path) -> None:
    ds = load("ud_ewt", cache_dir)
    assert (ds.task, ds.scheme) == ("pos", None)
    upos = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT"]
    assert ds.tag_names == [*upos, "SCONJ", "SYM", "VERB", "X"]
    assert ds.meta["files"]["en_ewt-ud-train.conllu.gz"] == SEQ_PRESETS["ud_ewt"].sha256["en_ewt-ud-train.conllu.gz"]
    assert ds.meta["unknown_word_rate"]["dev"] < 0.1


def test_span_f1_on_real_tags_equals_seqeval(cache_dir: Path) -> None:
    seqeval = pytest.importorskip("seqeval.metrics")
    gold = load("conll2003", cache_dir).test.tags
    rng = np.random.default_rng(0)
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-ORG"]
    pred = [[t if rng.random() < 0.9 else str(rng.choice(names)) for t in s] for s in gold]
    assert span_f1(gold, gold) == 1.0
    assert span_f1(gold, pred) == seqeval.f1_score(gold, pred)


@pytest.mark.parametrize("name", ["conll2003", "ud_ewt"])
def test_cached_reload_is_identical_and_faster(cache_dir: Path, name: str) -> None:
    start = time.perf_counter()
    cold = load(name, cache_dir / f"timing-{name}")
    first = time.perf_counter() - start
    start = time.perf_counter()
    warm = load(name, cache_dir / f"timing-{name}")
    cached = time.perf_counter() - start
    print(f"{name}: first load {first:.2f} s, cached load {cached:.2f} s ({first / cached:.1f}x)")
    for a, b in ((cold.train, warm.train), (cold.dev, warm.dev), (cold.test, warm.test)):
        np.testing.assert_array_equal(a.word_ids, b.word_ids)
        np.testing.assert_array_equal(a.char_ids, b.char_ids)
        assert a.tags == b.tags and a.tokens == b.tokens
    assert (cold.words, cold.meta) == (warm.words, warm.meta)
    assert cached < first


def test_max_train_examples_on_real_data(cache_dir: Path) -> None:
    ds = load("wnut17", cache_dir, max_train_examples=200, max_word_len=12)
    x, y = ds.train.batch(np.arange(8))
    assert len(ds.train) == 200 and x.chars.shape[2] <= 12 and y.shape[2] == 13
