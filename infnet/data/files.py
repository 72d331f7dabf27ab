"""Shared file handling of the data loaders: the cache directory, atomic writes and verified downloads.

Cache directory: the ``cache_dir`` argument, else ``$INFNET_CACHE``, else ``~/.cache/infnet``. All writes
(cache files and downloads) go to a temporary file that is renamed into place, so a concurrent reader sees
either nothing or a complete file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
import uuid
from pathlib import Path

from infnet.data.errors import DataDownloadError
from infnet.data.hashing import sha256_file

_DOWNLOAD_BLOCK = 1 << 20


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache directory: ``cache_dir`` if given, else ``$INFNET_CACHE``, else ``~/.cache/infnet``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("INFNET_CACHE") or Path.home() / ".cache" / "infnet").expanduser()


def fetch(url: str, dest: str | Path, sha256: str, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` unless a file with checksum ``sha256`` (hex) is already there.

    The download is hashed while it streams to a temporary file and renamed into place only if the
    checksum matches; otherwise the file is removed and :class:`DataDownloadError` is raised, as it is
    when the server cannot be reached.  Returns ``dest``.
    """
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256.lower():
        return dest
    digest = hashlib.sha256()
    with atomic_target(dest) as temporary:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(temporary, "wb") as out:
                while block := response.read(_DOWNLOAD_BLOCK):
                    digest.update(block)
                    out.write(block)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise DataDownloadError(
                f"could not download {url}: {exc}. Without network access, put {dest.name} in a directory "
                f"yourself and load it with data.root=<that directory>"
            ) from exc
        if digest.hexdigest() != sha256.lower():
            raise DataDownloadError(
                f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {digest.hexdigest()}; "
                f"the downloaded file was removed"
            )
    return dest


class atomic_target:
    """Context manager yielding a temporary path beside ``path``; renamed onto ``path`` on success, else removed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")

    def __enter__(self) -> Path:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        return self._temporary

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        if exc_type is None:
            os.replace(self._temporary, self._path)
        else:
            self._temporary.unlink(missing_ok=True)


__all__ = ["atomic_target", "cache_root", "fetch"]
