"""Tagging dataset specs: file names, where they sit under a root, checksums, public download location.

CoNLL-2003 is not openly licensed (Reuters text), so it has no download: users point ``data.root`` at
their copy.  WNUT-2017 (CC BY 4.0) and UD English-EWT r2.16 (CC BY-SA 4.0) download from their
organisers' GitHub repositories at fixed commits, verified with the SHA-256 below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from infnet.data.errors import DataNotFoundError

WNUT17_BASE_URL = (
    "https://raw.githubusercontent.com/leondz/emerging_entities_17/e52a2d2a71ac1a051ca2d532eef28653c5c02603"
)
UD_EWT_BASE_URL = (
    "https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/4c89b5833a70aa5ed3a00bad2f23f57992cc7df8"
)


@dataclass(frozen=True)
class SeqSpec:
    """How a tagging dataset is stored.

    ``kind`` is "conll" (column files) or "conllu"; ``files`` maps train/dev/test to file names;
    ``dirs`` are the sub-directories of a root that may hold them; ``sha256`` maps file names (a
    gzipped copy ``<file>.gz`` included) to known checksums; ``url`` is the download base (None: no
    download), files are ``<url>/<file>``.
    """

    name: str
    kind: str
    task: str
    scheme: str | None
    files: dict[str, str]
    dirs: tuple[str, ...] = ()
    sha256: dict[str, str] = field(default_factory=dict)
    url: str | None = None

    def locate(self, root: Path) -> dict[str, Path]:
        """Paths (split -> path) of the files in ``root`` or one of its ``dirs``; ``<file>.gz`` also counts."""
        candidates = [root, *(root / d for d in self.dirs)]
        for directory in candidates:
            found = {split: _existing(directory / name) for split, name in self.files.items()}
            if found["train"] is not None:
                missing = [self.files[split] for split, path in found.items() if path is None]
                if missing:
                    raise DataNotFoundError(f"{self.name}: {directory} lacks {', '.join(missing)}")
                return {split: path for split, path in found.items() if path is not None}
        where, files = ", ".join(str(d) for d in candidates), ", ".join(self.files.values())
        message = f"{self.name}: no {self.files['train']} in {where}; set data.root to the directory holding {files}"
        raise DataNotFoundError(message)


def _existing(path: Path) -> Path | None:
    gz = path.with_name(path.name + ".gz")
    return path if path.is_file() else gz if gz.is_file() else None


SEQ_PRESETS: dict[str, SeqSpec] = {
    "conll2003": SeqSpec(
        "conll2003",
        "conll",
        "ner",
        "iob1",
        {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"},
        ("conll2003", "ner/conll2003"),
        {
            "eng.train": "eac0822f501353f265383ddf1edb0dcd42a1b6eefd3e383d7074db98c38eb41c",
            "eng.testa": "aedc4ccbd1ae9795feaa0e86fe72d195b0258abed9d705b630d1c889276fac1e",
            "eng.testb": "0632f32c090ef31c223135b7fee3187a7cf8e65c4015c7866bb7783428cdd9a6",
        },
    ),
    "wnut17": SeqSpec(
        "wnut17",
        "conll",
        "ner",
        "bio",
        {"train": "wnut17train.conll", "dev": "emerging.dev.conll", "test": "emerging.test.annotated"},
        ("wnut17", "ner/wnut17"),
        {
            "wnut17train.conll": "731820e13f71af324c6b55a1575ec2ce59fbaa2a0806f8f0400b98d56cd6a7a5",
            "emerging.dev.conll": "e053b752b8155113ca66e7db08af5f2f5f43ab993694e4774f1ec5bad42312d8",
            "emerging.test.annotated": "2aa79b764e56ec9264a1b30fdd9b70195bd00ff400b62edd8f399d5f13c178f0",
        },
        WNUT17_BASE_URL,
    ),
    "ud_ewt": SeqSpec(
        "ud_ewt",
        "conllu",
        "pos",
        None,
        {"train": "en_ewt-ud-train.conllu", "dev": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"},
        ("ud_ewt", "ud_english_ewt", "UD_English-EWT", "pos/ud_english_ewt", "pos/ud_ewt"),
        {
            "en_ewt-ud-train.conllu": "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
            "en_ewt-ud-train.conllu.gz": "bd47e08c9e18ec12d319e84df2ccdb272ff6de1d0dba5761117d3caf8b358f7b",
            "en_ewt-ud-dev.conllu": "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
            "en_ewt-ud-test.conllu": "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
        },
        UD_EWT_BASE_URL,
    ),
}
