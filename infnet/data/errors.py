"""Exceptions raised by :mod:`infnet.data`; every message names the file (or URL) involved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


class DataError(Exception):
    """Base class of all data-loading errors."""


class DataFormatError(DataError, ValueError):
    """A data file is malformed; the message reads ``<file>:<line>: <what is wrong>``.

    ``line`` is 1-based, or None for a problem that belongs to the whole file.
    """

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


class DataNotFoundError(DataError, FileNotFoundError):
    """A required data file does not exist."""


class DataConfigError(DataError, ValueError):
    """The data configuration passed to :func:`infnet.data.load_mlc` is invalid."""


class DataDownloadError(DataError, OSError):
    """A download failed (network, HTTP error or checksum mismatch)."""


#: data config keys that the training run applies to a loaded dataset (``infnet.data.outer``), not the loaders
RUN_KEYS = ("outer_fraction",)


def given_settings(known: Iterable[str], cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The loader settings of a data config mapping (dict or OmegaConf node): its non-None values, without
    :data:`RUN_KEYS`; raises :class:`DataConfigError` naming any key outside ``known``."""
    settings = {key: cfg[key] for key in cfg if key not in RUN_KEYS}
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise DataConfigError(f"unknown data config key(s) {unknown}; known keys: {sorted(known)}")
    return {key: value for key, value in settings.items() if value is not None}
