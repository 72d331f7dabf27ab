"""SHA-256 digests of files and of small JSON-able descriptions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

_BLOCK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(description: Mapping) -> str:
    """Hex SHA-256 of ``description`` serialised as canonical JSON (sorted keys)."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
