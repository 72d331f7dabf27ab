"""Tagging data on small files the tests write: readers, tag schemes, vocabularies, batches, cache, config."""

from __future__ import annotations

import gzip
import itertools
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from infnet.data import (
    DataConfigError,
    DataFormatError,
    DataNotFoundError,
    MLCDataset,
    SeqDataset,
    load_data,
    load_seq,
)
from infnet.data.errors import RUN_KEYS
from infnet.data.seq.config import SeqDataConfig
from infnet.data.seq.conll import read_conll, to_bio
from infnet.data.seq.conllu import read_conllu
from infnet.data.seq.corpus import Corpus
from infnet.data.seq.schemes import bio_to_iob1, iob1_to_bio
from infnet.data.seq.types import PAD_ID, UNK_ID
from infnet.data.seq.vocab import Vocab, build_char_vocab, build_word_vocab

CONF_DIR = Path(__file__).resolve().parents[1] / "infnet" / "conf" / "data"

# invented sentences in IOB1 (Bob and Carol are two touching PER entities)
IOB1_TEXT = """-DOCSTART- -X- O O

Alice NNP I-NP I-PER
visited VBD I-VP O
Paris NNP I-NP I-LOC
and CC O O
Lyon NNP I-NP I-LOC
in IN O O
2021 CD I-NP O
. . O O

Bob NNP I-NP I-PER
Carol NNP I-NP B-PER
met VBD I-VP O
New NNP I-NP I-ORG
Acme NNP I-NP I-ORG
. . O O

-DOCSTART- -X- O O

Zed NNP I-NP I-MISC
"""
IOB1_TAGS = [
    ["I-PER", "O", "I-LOC", "O", "I-LOC", "O", "O", "O"],
    ["I-PER", "B-PER", "O", "I-ORG", "I-ORG", "O"],
    ["I-MISC"],
]
BIO_TAGS = [
    ["B-PER", "O", "B-LOC", "O", "B-LOC", "O", "O", "O"],
    ["B-PER", "B-PER", "O", "B-ORG", "I-ORG", "O"],
    ["B-MISC"],
]

CONLLU_TEXT = """# sent_id = a-1
# text = I'm home.
1-2\tI'm\t_\t_\t_\t_\t_\t_\t_\t_
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2\t'm\tbe\tAUX\tVBP\t_\t3\tcop\t_\t_
3\thome\thome\tADV\tRB\t_\t0\troot\t_\t_
3.1\tis\tbe\tAUX\t_\t_\t_\t_\t3:cop\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = a-2
1\tNew York\tNew York\tPROPN\tNNP\t_\t0\troot\t_\t_
2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_
"""


def sentence_tags(corpus: Corpus) -> list[list[str]]:
    """The tags of every sentence of ``corpus``."""
    return [corpus.tags[a:b] for a, b in itertools.pairwise(corpus.offsets.tolist())]


def write_conll(path: Path, sentences: list[tuple[list[str], list[str]]], sep: str = "\t") -> Path:
    """A two-column file (token, tag), blank line after each sentence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [line for tokens, tags in sentences for line in [*(f"{w}{sep}{t}" for w, t in zip(tokens, tags)), ""]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def random_sentences(rng: np.random.Generator, n: int, words: list[str]) -> list[tuple[list[str], list[str]]]:
    """n random proper-BIO sentences of 1-14 tokens over ``words`` (entity types PER and LOC)."""
    lengths = rng.integers(1, 15, size=n)
    tokens = rng.choice(words, size=lengths.sum()).tolist()
    moves = rng.integers(0, 5, size=lengths.sum()).tolist()  # O, O, B-PER, B-LOC, continue the entity
    out, position = [], 0
    for length in lengths.tolist():
        tags, previous = [], "O"
        for move in moves[position : position + length]:
            previous = ("O", "O", "B-PER", "B-LOC", "O")[move] if move < 4 or previous == "O" else f"I-{previous[2:]}"
            tags.append(previous)
        out.append((tokens[position : position + length], tags))
        position += length
    return out


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A small BIO dataset ``toy`` with train/dev/test files; dev and test hold words train lacks."""
    rng = np.random.default_rng(0)
    words = [a + b for a in "abcdefgh" for b in "xyzw"]  # no digits: those would all read as one form
    fixed = {
        "train": (["Paris", "paris", "1999", "ax"], ["B-LOC", "O", "O", "O"]),
        "dev": (["PARIS", "2024", "novel"], ["B-LOC", "O", "O"]),
        "test": (["Päris", "rare"], ["B-LOC", "O"]),
    }
    for split, n in (("train", 60), ("dev", 15), ("test", 20)):
        write_conll(tmp_path / "toy" / f"{split}.txt", [fixed[split], *random_sentences(rng, n, words)])
    return tmp_path / "toy"


def toy_cfg(root: Path, cache_dir: Path, **extra: object) -> dict:
    files = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}
    return {"name": "toy", "kind": "conll", "root": str(root), "files": files, "cache_dir": str(cache_dir), **extra}


# --- readers ---------------------------------------------------------------------------------------


def test_read_conll_iob1_and_convert(tmp_path: Path) -> None:
    path = tmp_path / "eng.toy"
    path.write_text(IOB1_TEXT)
    corpus = read_conll(path)
    assert sentence_tags(corpus) == IOB1_TAGS
    assert corpus.tokens[:3] == ["Alice", "visited", "Paris"] and len(corpus) == 3
    assert corpus.lines[[0, 8, 14]].tolist() == [3, 12, 21]  # 1-based source lines
    bio, changed = to_bio(corpus, "iob1")
    assert sentence_tags(bio) == BIO_TAGS and changed == 6


def test_read_conll_whitespace_quirks_crlf_and_gzip(tmp_path: Path) -> None:
    # WNUT-2017 style: tab-separated, sentences also separated by a line holding only a tab; CRLF ends
    text = "@user\tO\r\nloves\tO\r\nNew\tB-location\r\nYork\tI-location\r\n\t\r\nok\tO\r\n\r\n\r\nbye\tO"
    plain = tmp_path / "wnut.conll"
    plain.write_bytes(text.encode())
    packed = tmp_path / "wnut.conll.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for path in (plain, packed):
        corpus = read_conll(path)
        assert sentence_tags(corpus) == [["O", "O", "B-location", "I-location"], ["O"], ["O"]]
        assert corpus.tokens == ["@user", "loves", "New", "York", "ok", "bye"]
        assert corpus.lines.tolist() == [1, 2, 3, 4, 6, 9]


def test_improper_bio_is_repaired_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_conll(tmp_path / "bad.bio", [(["a", "b", "c"], ["O", "I-PER", "I-LOC"])])
    with caplog.at_level(logging.WARNING, logger="infnet.data.seq.conll"):
        corpus, changed = to_bio(read_conll(path), "bio")
    assert corpus.tags == ["O", "B-PER", "B-LOC"] and changed == 2
    assert "data.scheme=iob1" in caplog.text


def test_read_conllu_skips_ranges_empty_nodes_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "toy.conllu"
    path.write_text(CONLLU_TEXT)
    corpus = read_conllu(path)
    assert corpus.tokens == ["I", "'m", "home", ".", "New York", "!"]
    assert sentence_tags(corpus) == [["PRON", "AUX", "ADV", "PUNCT"], ["PROPN", "PUNCT"]]
    assert corpus.lines.tolist() == [4, 5, 6, 8, 11, 12]
    packed = tmp_path / "toy.conllu.gz"
    packed.write_bytes(gzip.compress(CONLLU_TEXT.encode()))
    assert read_conllu(packed).tokens == corpus.tokens


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a O\nb X O\n", 2, r"found 3 columns, expected 2 like line 1"),
        ("b\na O\n", 1, r"found 1 columns, expected at least 2 \(token ... tag\)"),
        ("a\tO\n\nb\n", 3, r"found 1 columns, expected 2 like line 1"),
        ("a O\n\nb O\nc E-PER\n", 4, r"tag 'E-PER' is not O, B-<type> or I-<type>"),
        ("a O\nb B_PER\n", 2, r"'B_PER' is not O"),
        ("a O\nb B-\n", 2, r"'B-' is not O"),
        ("a O\nb PER\n", 2, r"'PER' is not O"),
    ],
)
def test_malformed_conll_names_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "broken.conll"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=rf"broken\.conll:{line}: .*{message}") as info:
        read_conll(path)
    assert (info.value.path, info.value.line) == (str(path), line)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conll"
    path.write_bytes("a O\nb O\n\ncaf\u00e9 O\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.conll:4: not valid UTF-8"):
        read_conll(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1\tI\tI\tPRON\tPRP\t_\t0\troot\t_", r"expected 10 tab-separated columns, found 9"),
        ("x\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_", r"bad word id 'x'"),
        ("1-\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_", r"bad word id '1-'"),
        ("3\tI\tI\tPRON\tPRP\t_\t0\troot\t_\t_", r"word id 3 out of sequence, expected 2"),
        ("2\tI\tI\t_\tPRP\t_\t0\troot\t_\t_", r"word 2 has no FORM or no UPOS"),
    ],
)
def test_malformed_conllu_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "broken.conllu"
    path.write_text(f"# c\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n{line}\n")
    with pytest.raises(DataFormatError, match=rf"broken\.conllu:3: {message}"):
        read_conllu(path)


def test_missing_file_and_damaged_gzip(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="nothing.conll"):
        read_conll(tmp_path / "nothing.conll")
    damaged = tmp_path / "cut.conllu.gz"
    damaged.write_bytes(gzip.compress(CONLLU_TEXT.encode() * 50)[:200])
    with pytest.raises(DataFormatError, match=r"cut\.conllu\.gz:\d+: cannot read the file"):
        read_conllu(damaged)


# --- tag schemes -----------------------------------------------------------------------------------


def test_scheme_round_trips_on_random_sequences() -> None:
    rng = np.random.default_rng(1)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(300):
        bio = iob1_to_bio(list(rng.choice(tags, size=int(rng.integers(0, 12)))))  # proper BIO
        iob1 = bio_to_iob1(bio)
        assert iob1_to_bio(iob1) == bio and bio_to_iob1(bio) == iob1
        assert not any(t.startswith("B-") and (i == 0 or iob1[i - 1][2:] != t[2:]) for i, t in enumerate(iob1))
    assert iob1_to_bio(IOB1_TAGS[1]) == BIO_TAGS[1] and bio_to_iob1(BIO_TAGS[1]) == IOB1_TAGS[1]


def test_flat_conversion_respects_sentence_ends() -> None:
    flat = [tag for sentence in IOB1_TAGS for tag in sentence]
    offsets = np.cumsum([0, *map(len, IOB1_TAGS)])
    assert iob1_to_bio(flat, offsets) == [tag for sentence in BIO_TAGS for tag in sentence]
    # an I-PER opening a sentence starts an entity even after an I-PER that ended the previous one
    assert iob1_to_bio(["I-PER", "I-PER"], np.array([0, 1, 2])) == ["B-PER", "B-PER"]
    assert iob1_to_bio(["I-PER", "I-PER"]) == ["B-PER", "I-PER"]


# --- vocabularies ----------------------------------------------------------------------------------


def test_word_vocab_is_built_on_train_with_fallbacks() -> None:
    vocab = build_word_vocab(["the", "The", "the", "cat", "1999", "2001", "rare"], min_freq=1)
    assert vocab.items[:4] == ("<pad>", "<unk>", "0000", "the") and vocab.counts[2:4].tolist() == [2, 2]
    assert vocab.lookup("The") == vocab.items.index("The")  # exact form first
    assert vocab.lookup("THE") == vocab.lookup("the")  # lowercase fallback
    assert vocab.lookup("1789") == vocab.lookup("0000")  # digits -> 0
    assert vocab.lookup("dog") == UNK_ID and vocab.lookup("<pad>") == PAD_ID
    frequent = build_word_vocab(["the", "The", "the", "cat", "rare"], min_freq=2)
    assert frequent.items == ("<pad>", "<unk>", "the") and frequent.lookup("cat") == UNK_ID
    lower = build_word_vocab(["the", "The", "A"], lowercase=True)
    assert lower.items == ("<pad>", "<unk>", "the", "a") and lower.lookup("THE") == 2
    cat, the = vocab.lookup("cat"), vocab.lookup("the")
    np.testing.assert_array_equal(vocab.encode(["cat", "dog", "the", "cat"]), [cat, UNK_ID, the, cat])
    assert Vocab.from_json(vocab.to_json()) == vocab


def test_char_vocab() -> None:
    chars = build_char_vocab(["aab", "bé"])
    assert chars.items == ("<pad>", "<unk>", "a", "b", "é") and chars.counts.tolist() == [0, 0, 2, 2, 1]
    np.testing.assert_array_equal(chars.encode_chars(["ba", "z", "é"]), [3, 2, UNK_ID, 4])
    assert chars.lookup("A") == UNK_ID  # no case folding for characters


# --- splits and batches ----------------------------------------------------------------------------


def test_vocab_from_train_only_and_unknown_words(corpus_dir: Path, tmp_path: Path) -> None:
    ds = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    assert (ds.task, ds.scheme, ds.tag_names) == ("ner", "bio", ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"])
    assert "novel" not in ds.words and "rare" not in ds.words and "paris" in ds.words
    assert not (ds.train.word_ids == UNK_ID).any()
    dev_tokens = np.array([t for s in ds.dev.tokens for t in s])
    np.testing.assert_array_equal(ds.dev.word_ids[dev_tokens == "novel"], UNK_ID)
    assert (ds.dev.word_ids[dev_tokens == "PARIS"] == ds.words.lookup("paris")).all()
    assert (ds.dev.word_ids[dev_tokens == "2024"] == ds.words.lookup("0000")).all()
    assert ds.test.tokens[0] == ["Päris", "rare"] and ds.test.word_ids[0] == UNK_ID
    chars = [ds.chars.lookup(c) for c in "Paris"]
    np.testing.assert_array_equal(ds.test.char_ids[:5], [chars[0], UNK_ID, *chars[2:]])  # "ä" is not in train
    assert ds.meta["unknown_word_rate"]["train"] == 0 and ds.meta["unknown_word_rate"]["dev"] > 0


def test_batch_shapes_masks_one_hot_and_chars(corpus_dir: Path, tmp_path: Path) -> None:
    ds = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    split = ds.test
    idx = np.array([3, 0, 7, 7])
    x, y = split.batch(idx)
    lengths = split.lengths[idx]
    T = lengths.max()
    C = max(len(t) for i in idx for t in split.tokens[i])
    assert x.words.shape == (4, T) and x.chars.shape == (4, T, C) and y.shape == (4, T, ds.n_labels)
    assert x.words.dtype == x.chars.dtype == torch.int64 and x.mask.dtype == torch.bool and y.dtype == torch.float32
    np.testing.assert_array_equal(x.mask.sum(1).numpy(), lengths)
    assert (x.words[~x.mask] == PAD_ID).all() and (x.chars[~x.mask] == PAD_ID).all()
    assert (y[~x.mask] == 0).all() and (y[x.mask].sum(-1) == 1).all()
    for row, i in enumerate(idx):
        assert [ds.tag_names[k] for k in y[row, : lengths[row]].argmax(-1).tolist()] == split.tags[i]
        assert [ds.words.lookup(t) for t in split.tokens[i]] == x.words[row, : lengths[row]].tolist()
        for col, token in enumerate(split.tokens[i]):
            expected = [ds.chars.lookup(c) for c in token] + [PAD_ID] * (C - len(token))
            assert x.chars[row, col].tolist() == expected
    capped = load_seq(toy_cfg(corpus_dir, tmp_path / "c", max_word_len=2)).test.batch(idx)[0]
    assert capped.chars.shape == (4, T, 2)
    torch.testing.assert_close(capped.chars, x.chars[:, :, :2])
    assert split.batch(np.array([], dtype=np.int64))[0].words.shape == (0, 0)


def test_take_matches_batch(corpus_dir: Path, tmp_path: Path) -> None:
    split = load_seq(toy_cfg(corpus_dir, tmp_path / "c")).train
    idx = np.array([5, 1, 9])
    part = split.take(idx)
    assert len(part) == 3 and part.tokens == [split.tokens[i] for i in idx]
    assert part.tags == [split.tags[i] for i in idx]
    for a, b in zip(part.batch(np.arange(3)), split.batch(idx)):
        torch.testing.assert_close(a, b)


def test_map_inputs_restores_order_and_pads(corpus_dir: Path, tmp_path: Path) -> None:
    split = load_seq(toy_cfg(corpus_dir, tmp_path / "c")).dev
    seen_batch_sizes = []

    def fn(x):  # (B, T) word ids -> (B, T, 2): the id and the position + 1, zero at padding
        seen_batch_sizes.append(x.words.shape[0])
        positions = torch.arange(1, x.words.shape[1] + 1).expand_as(x.words)
        return torch.stack([x.words, positions], -1).float() * x.mask[..., None]

    out = split.map_inputs(fn, "cpu", batch_size=4)
    lengths = split.lengths
    assert out.shape == (len(split), lengths.max(), 2) and seen_batch_sizes[0] == 4
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(out[i, :n, 0].numpy(), split.word_ids[split.offsets[i] : split.offsets[i + 1]])
        np.testing.assert_array_equal(out[i, :n, 1].numpy(), np.arange(1, n + 1))
        assert (out[i, n:] == 0).all()


def test_decode_scores_and_ids(corpus_dir: Path, tmp_path: Path) -> None:
    ds = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    split = ds.test
    _, y = split.batch(np.arange(len(split)))
    assert ds.decode(y, split) == split.tags
    ids = y.argmax(-1).numpy()
    wider = np.concatenate([ids, np.zeros((len(split), 3), dtype=ids.dtype)], axis=1)
    assert ds.decode(wider, split) == split.tags
    with pytest.raises(ValueError, match="do not cover"):
        ds.decode(ids[:, :1], split)


def test_source_scheme_output_round_trips_iob1(tmp_path: Path) -> None:
    path = tmp_path / "data" / "eng.toy"
    path.parent.mkdir()
    path.write_text(IOB1_TEXT)
    files = {"train": "eng.toy", "dev": "eng.toy", "test": "eng.toy"}
    cfg = {"name": "iob1toy", "kind": "conll", "scheme": "iob1", "root": str(path.parent), "files": files}
    ds = load_seq({**cfg, "cache": False})
    assert ds.test.tags == BIO_TAGS and ds.to_source_scheme(ds.test.tags) == IOB1_TAGS
    ds.write_predictions(tmp_path / "pred.txt", ds.test, ds.test.tags)
    lines = (tmp_path / "pred.txt").read_text().split("\n")
    assert lines[:2] == ["Alice I-PER I-PER", "visited O O"] and lines[8] == "" and lines[10] == "Carol B-PER B-PER"


# --- loader: cache, subsampling, config ------------------------------------------------------------


def assert_same(a: SeqDataset, b: SeqDataset) -> None:
    for x, y in ((a.train, b.train), (a.dev, b.dev), (a.test, b.test)):
        for name in ("offsets", "word_ids", "tag_ids", "char_offsets", "char_ids", "flat_tokens"):
            assert getattr(x, name).dtype == getattr(y, name).dtype, name
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
        assert x.tag_names == y.tag_names
    assert (a.words, a.chars, a.tag_names, a.meta) == (b.words, b.chars, b.tag_names, b.meta)
    assert (a.name, a.task, a.scheme, a.source_sha256) == (b.name, b.task, b.scheme, b.source_sha256)


def test_cache_hit_is_identical_and_faster(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    words = [f"tok{i}" for i in range(3000)]
    for split, n in (("train", 6000), ("dev", 800), ("test", 800)):
        write_conll(tmp_path / "big" / f"{split}.txt", random_sentences(rng, n, words), sep=" ")
    cfg = toy_cfg(tmp_path / "big", tmp_path / "c")
    start = time.perf_counter()
    built = load_seq(cfg)
    first = time.perf_counter() - start
    [path] = sorted((tmp_path / "c" / "seq").iterdir())
    assert path.suffix == ".parquet" and path.name.startswith("toy-")
    cached_times = []
    for _ in range(2):
        start = time.perf_counter()
        cached = load_seq(cfg)
        cached_times.append(time.perf_counter() - start)
    print(f"toy ({len(built.train.word_ids)} train tokens): first load {first:.3f} s, cached {min(cached_times):.3f} s")
    assert_same(built, cached)
    assert_same(built, load_seq({**cfg, "cache": False}))
    assert min(cached_times) < first
    assert cached.train.word_ids.flags.writeable


def test_damaged_cache_is_rebuilt(corpus_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reference = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    [path] = sorted((tmp_path / "c" / "seq").iterdir())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="infnet.data.parquet_cache"):
        rebuilt = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    assert "discarding unreadable dataset cache" in caplog.text
    assert_same(reference, rebuilt)
    assert path.read_bytes() == data


def test_cache_key_follows_files_and_vocab_settings(corpus_dir: Path, tmp_path: Path) -> None:
    first = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    load_seq(toy_cfg(corpus_dir, tmp_path / "c", min_freq=2))
    load_seq(toy_cfg(corpus_dir, tmp_path / "c", lowercase=True))
    load_seq(toy_cfg(corpus_dir, tmp_path / "c", max_word_len=3, max_train_examples=5))  # not part of the key
    assert len(list((tmp_path / "c" / "seq").iterdir())) == 3
    with open(corpus_dir / "test.txt", "a") as out:
        out.write("extra\tO\n")
    changed = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    assert len(list((tmp_path / "c" / "seq").iterdir())) == 4
    assert len(changed.test) == len(first.test) + 1 and changed.source_sha256 != first.source_sha256


def test_max_train_examples_subsamples_with_a_recorded_seed(corpus_dir: Path, tmp_path: Path) -> None:
    full = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    small = load_seq(toy_cfg(corpus_dir, tmp_path / "c", max_train_examples=10))
    again = load_seq(toy_cfg(corpus_dir, tmp_path / "c", max_train_examples=10))
    other = load_seq(toy_cfg(corpus_dir, tmp_path / "c", max_train_examples=10, subsample_seed=1))
    assert len(small.train) == 10
    assert small.meta["subsample"] == {"max_train_examples": 10, "seed": 0, "from": len(full.train), "kept": 10}
    assert small.train.tokens == again.train.tokens != other.train.tokens
    assert all(sentence in full.train.tokens for sentence in small.train.tokens)
    assert small.words == full.words and len(small.dev) == len(full.dev)
    assert len(load_seq(toy_cfg(corpus_dir, tmp_path / "c", max_train_examples=1000)).train) == len(full.train)


def test_embeddings_from_a_glove_file(corpus_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vectors = {word: rng.normal(size=4).round(3) for word in ["ax", "paris", "novel", "unused", "rare"]}
    glove = tmp_path / "vectors.txt"
    glove.write_text("5 4\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    ds = load_seq(toy_cfg(corpus_dir, tmp_path / "c", embeddings=str(glove)))
    assert "novel" in ds.words and "rare" in ds.words and "unused" not in ds.words  # dev/test words with vectors
    plain = load_seq(toy_cfg(corpus_dir, tmp_path / "c"))
    assert ds.n_words == plain.n_words + 2 and ds.words.items[: plain.n_words] == plain.words.items
    matrix = ds.embeddings
    assert matrix.shape == (ds.n_words, 4) and matrix.dtype == torch.float32
    assert (matrix[PAD_ID] == 0).all() and (matrix[UNK_ID] != 0).all()
    for word in ("ax", "novel", "paris"):
        np.testing.assert_allclose(matrix[ds.words.lookup(word)].numpy(), vectors[word], rtol=1e-6)
    np.testing.assert_allclose(matrix[ds.words.lookup("Paris")].numpy(), vectors["paris"], rtol=1e-6)  # lowercase match
    stats = ds.meta["embeddings"]
    assert stats["dim"] == 4 and stats["file_words"] == 5 and stats["vocab_with_vector"] == 5
    assert 0 < stats["token_coverage"]["train"] < 1
    cached = load_seq(toy_cfg(corpus_dir, tmp_path / "c", embeddings=str(glove)))
    torch.testing.assert_close(cached.embeddings, matrix)
    assert plain.embeddings is None


def test_ragged_embedding_line_names_file_and_line(corpus_dir: Path, tmp_path: Path) -> None:
    glove = tmp_path / "ragged.txt"
    glove.write_text("a 1 2 3\nb 4 5 6\nc 7 8\n")
    expected = r"ragged\.txt:3: ragged line: 2 numbers after the word, expected 3 like line 1"
    with pytest.raises(DataFormatError, match=expected):
        load_seq(toy_cfg(corpus_dir, tmp_path / "c", embeddings=str(glove)))
    glove.write_text("ax 1 2 3\nay 4 x 6\n")
    with pytest.raises(DataFormatError, match=r"ragged\.txt:2: the vector of 'ay' holds a value that is not a number"):
        load_seq(toy_cfg(corpus_dir, tmp_path / "c", embeddings=str(glove)))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"name": "conll2003"}, r"cannot be downloaded .*set data\.root=<directory with eng\.train, eng\.testa, eng\.test"),
        ({"name": "conll2003", "dev_fraction": 0.1}, r"unknown data config key\(s\) \['dev_fraction'\]"),
        ({"name": "mine"}, r"unknown tagging dataset 'mine'.*data\.kind=conll\|conllu"),
        ({"name": "mine", "kind": "conll", "root": "."}, r"data\.files must name"),
        ({"name": "wnut17", "scheme": "iobes"}, r"data\.scheme must be one of \('iob1', 'bio'\)"),
        ({"name": "ud_ewt", "scheme": "bio"}, r"data\.scheme applies to NER tags only"),
        ({"name": "ud_ewt", "task": "ner"}, r"CoNLL-U files are read for POS tagging"),
        ({"name": "wnut17", "kind": "conllu"}, r"data\.name='wnut17' is data\.kind='conll'"),
        ({"name": "wnut17", "min_freq": 0}, r"data\.min_freq must be an integer >= 1"),
        ({"name": "wnut17", "max_train_examples": 2.5}, r"data\.max_train_examples must be an integer >= 1"),
        ({"name": "wnut17", "files": {"training": "x"}}, r"data\.files keys must be among"),
    ],
)
def test_config_errors(cfg: dict, message: str) -> None:
    with pytest.raises(DataConfigError, match=message):
        load_seq(cfg)


def test_preset_files_are_found_under_root_or_its_parents(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    files = {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"}
    for name in files.values():
        write_conll(tmp_path / "shared" / "ner" / "wnut17" / name, random_sentences(rng, 5, ["a", "b"]))
    for root in ("shared", "shared/ner", "shared/ner/wnut17"):
        ds = load_seq({"name": "wnut17", "root": str(tmp_path / root), "cache": False})
        assert len(ds.train) == 5 and set(ds.meta["files"]) == set(files.values())
    (tmp_path / "shared" / "ner" / "wnut17" / files["test"]).unlink()
    with pytest.raises(DataNotFoundError, match="lacks emerging.test.annotated"):
        load_seq({"name": "wnut17", "root": str(tmp_path / "shared"), "cache": False})
    with pytest.raises(DataNotFoundError, match="no wnut17train.conll in"):
        load_seq({"name": "wnut17", "root": str(tmp_path / "elsewhere"), "cache": False})


def test_load_data_dispatches_on_task_kind_and_name(corpus_dir: Path, tmp_path: Path) -> None:
    small = {"n_train": 20, "n_dev": 5, "n_test": 5}
    assert isinstance(load_data({"task": "mlc", "name": "synthetic_mlc", "n_train": 30}), MLCDataset)
    assert isinstance(load_data({}), MLCDataset)
    assert isinstance(load_data({"name": "synthetic_seq", **small}), SeqDataset)
    assert isinstance(load_data(toy_cfg(corpus_dir, tmp_path / "c", task="ner")), SeqDataset)
    assert load_data(toy_cfg(corpus_dir, tmp_path / "c")).task == "ner"
    with pytest.raises(DataConfigError, match=r"data\.task must be one of \('mlc', 'ner', 'pos'\)"):
        load_data({"task": "parsing"})


@pytest.mark.parametrize("name", ["synthetic_seq", "conll2003", "wnut17", "ud_ewt"])
def test_yaml_presets_hold_every_loader_key(name: str) -> None:
    cfg = OmegaConf.load(CONF_DIR / f"{name}.yaml")
    assert set(cfg) == set(SeqDataConfig.__dataclass_fields__) | set(RUN_KEYS)
    config = SeqDataConfig.from_mapping(cfg)
    assert config.name == name and config.task == cfg.task and config.kind == cfg.kind
