"""The ``data`` configuration accepted by :func:`infnet.data.load_mlc`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from infnet.data.errors import DataConfigError, given_settings

SYNTHETIC_NAME = "synthetic_mlc"
KINDS = ("mulan", "synthetic")
SYNTHETIC_KEYS = ("n_train", "n_dev", "n_test", "n_features", "n_labels", "noise", "seed", "n_unlabeled")


@dataclass(frozen=True)
class DataConfig:
    """Validated data configuration; see :func:`infnet.data.load_mlc` for the meaning of each key.

    The synthetic keys default to None, meaning the default of
    :func:`infnet.data.mlc.synthetic.make_synthetic_mlc`.
    """

    name: str = SYNTHETIC_NAME
    kind: str | None = None
    root: str | None = None
    dev_fraction: float = 0.1
    dev_seed: int = 0
    cache_dir: str | None = None
    cache: bool = True
    url: str | None = None
    sha256: Mapping[str, str] | None = None
    n_train: int | None = None
    n_dev: int | None = None
    n_test: int | None = None
    n_features: int | None = None
    n_labels: int | None = None
    noise: float | None = None
    seed: int | None = None
    n_unlabeled: int | None = None

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> DataConfig:
        """Build from a mapping (dict or OmegaConf node); a None value means "use the default"."""
        given = given_settings([f.name for f in fields(cls)], cfg)
        if "sha256" in given:
            given["sha256"] = {str(k): str(v).lower() for k, v in dict(given["sha256"]).items()}
        for key in ("root", "cache_dir"):
            if key in given:
                given[key] = str(given[key])
        config = cls(**given)
        kind = config.kind or ("synthetic" if config.name == SYNTHETIC_NAME else "mulan")
        if kind not in KINDS:
            raise DataConfigError(f"data.kind must be one of {KINDS}, got {kind!r}")
        if kind == "synthetic" and config.name != SYNTHETIC_NAME:
            raise DataConfigError(f"data.kind='synthetic' needs data.name={SYNTHETIC_NAME!r}, got {config.name!r}")
        resolved = {"kind": kind, "dev_fraction": float(config.dev_fraction), "dev_seed": int(config.dev_seed)}
        return cls(**{**given, **resolved})

    def synthetic_params(self) -> dict[str, Any]:
        """The synthetic generator arguments that were set."""
        return {key: getattr(self, key) for key in SYNTHETIC_KEYS if getattr(self, key) is not None}
