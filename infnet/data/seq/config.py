"""The ``data`` configuration accepted by :func:`infnet.data.load_seq` (tagging datasets)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from infnet.data.errors import DataConfigError, given_settings
from infnet.data.seq.build import SPLITS, TASKS
from infnet.data.seq.presets import SEQ_PRESETS, SeqSpec
from infnet.data.seq.schemes import SCHEMES

SYNTHETIC_SEQ_NAME = "synthetic_seq"
SEQ_KINDS = ("synthetic_seq", "conll", "conllu")
SYNTHETIC_SEQ_KEYS = ("n_train", "n_dev", "n_test", "n_types", "seed")
_INT_MINIMUMS = {
    "min_freq": 1,
    "subsample_seed": 0,
    "max_train_examples": 1,
    "max_word_len": 1,
    "n_train": 1,
    "n_dev": 1,
    "n_test": 1,
    "n_types": 1,
    "seed": 0,
}


@dataclass(frozen=True)
class SeqDataConfig:
    """Validated tagging data configuration; see :func:`infnet.data.load_seq` for the meaning of each key.

    ``from_mapping`` resolves ``kind``, ``task`` and ``scheme`` from the preset (or the kind) when
    they are not set; the synthetic keys default to None, meaning the generator's defaults.
    """

    name: str = SYNTHETIC_SEQ_NAME
    task: str | None = None
    kind: str | None = None
    root: str | None = None
    files: Mapping[str, str] | None = None
    scheme: str | None = None
    max_train_examples: int | None = None
    subsample_seed: int = 0
    min_freq: int = 1
    lowercase: bool = False
    max_word_len: int | None = None
    embeddings: str | None = None
    cache: bool = True
    cache_dir: str | None = None
    url: str | None = None
    sha256: Mapping[str, str] | None = None
    n_train: int | None = None
    n_dev: int | None = None
    n_test: int | None = None
    n_types: int | None = None
    seed: int | None = None

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> SeqDataConfig:
        """Build from a mapping (dict or OmegaConf node); a None value means "use the default"."""
        given = given_settings([f.name for f in fields(cls)], cfg)
        for key in ("files", "sha256"):
            if key in given:
                given[key] = {str(k): str(v) for k, v in dict(given[key]).items()}
        for key in ("root", "cache_dir", "embeddings"):
            if key in given:
                given[key] = str(given[key])
        config = cls(**given)
        preset = SEQ_PRESETS.get(config.name)
        kind = config.kind or _default_kind(config.name, preset)
        task = config.task or (preset.task if preset else "pos" if kind == "conllu" else "ner")
        scheme = config.scheme or (preset.scheme if preset else "bio" if task == "ner" else None)
        _check(config, kind, task, scheme, preset)
        return cls(**{**given, "kind": kind, "task": task, "scheme": scheme})

    def spec(self) -> SeqSpec:
        """The file spec: the preset's (with ``files``, ``sha256`` and ``url`` overrides) or a custom one."""
        preset = SEQ_PRESETS.get(self.name)
        if preset is None:
            return SeqSpec(self.name, self.kind, self.task, self.scheme, dict(self.files or {}), url=self.url)
        return SeqSpec(
            preset.name,
            preset.kind,
            self.task,
            self.scheme,
            {**preset.files, **(self.files or {})},
            preset.dirs,
            {**preset.sha256, **(self.sha256 or {})},
            self.url or preset.url,
        )

    def synthetic_params(self) -> dict[str, Any]:
        """The synthetic generator arguments that were set."""
        return {key: getattr(self, key) for key in SYNTHETIC_SEQ_KEYS if getattr(self, key) is not None}


def _default_kind(name: str, preset: SeqSpec | None) -> str:
    if name == SYNTHETIC_SEQ_NAME:
        return "synthetic_seq"
    if preset is None:
        raise DataConfigError(
            f"unknown tagging dataset {name!r} (presets: {[SYNTHETIC_SEQ_NAME, *SEQ_PRESETS]}); for your own "
            f"files set data.kind=conll|conllu, data.root=<dir> and data.files={{train: ..., dev: ..., test: ...}}"
        )
    return preset.kind


def _check(config: SeqDataConfig, kind: str, task: str, scheme: str | None, preset: SeqSpec | None) -> None:
    """Raise DataConfigError naming the first invalid key."""
    expected_kind = "synthetic_seq" if config.name == SYNTHETIC_SEQ_NAME else preset.kind if preset else None
    problems = [
        (kind not in SEQ_KINDS, f"data.kind must be one of {SEQ_KINDS}, got {kind!r}"),
        (expected_kind not in (None, kind), f"data.name={config.name!r} is data.kind={expected_kind!r}, not {kind!r}"),
        (task not in TASKS, f"data.task must be one of {TASKS} for tagging data, got {task!r}"),
        (kind == "conllu" and task != "pos", "CoNLL-U files are read for POS tagging: data.task must be 'pos'"),
        (kind == "synthetic_seq" and task != "ner", "the synthetic tagging data is NER-style: data.task must be 'ner'"),
        (task == "ner" and scheme not in SCHEMES, f"data.scheme must be one of {SCHEMES} for NER, got {scheme!r}"),
        (task == "pos" and scheme is not None, f"data.scheme applies to NER tags only, got {scheme!r} for POS"),
    ]
    for key, minimum in _INT_MINIMUMS.items():
        value = getattr(config, key)
        bad = value is not None and not _is_int(value, minimum)
        problems.append((bad, f"data.{key} must be an integer >= {minimum}, got {value!r}"))
    for key in ("lowercase", "cache"):
        value = getattr(config, key)
        problems.append((not isinstance(value, bool), f"data.{key} must be true or false, got {value!r}"))
    if config.files is not None and not set(config.files) <= set(SPLITS):
        problems.append((True, f"data.files keys must be among {SPLITS}, got {sorted(config.files)}"))
    if kind != "synthetic_seq":
        synthetic = ", data.".join(key for key in SYNTHETIC_SEQ_KEYS if getattr(config, key) is not None)
        problems.append((bool(synthetic), f"data.{synthetic} only apply to data.name={SYNTHETIC_SEQ_NAME}"))
    if kind != "synthetic_seq" and preset is None:
        files_named = set(config.files or ()) == set(SPLITS)
        problems.append((not files_named, f"data.files must name {SPLITS} files for {config.name!r}"))
        problems.append((config.root is None, f"set data.root to the directory holding the {config.name!r} files"))
    for bad, message in problems:
        if bad:
            raise DataConfigError(message)


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
