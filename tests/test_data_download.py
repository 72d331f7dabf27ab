"""Downloading a preset from a real local HTTP server (bookmarks layout: one ARFF, 2/3 : 1/3 split)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import write_single

from infnet.data import DataDownloadError, load_mlc
from infnet.data.files import fetch
from infnet.data.mlc.presets import PRESETS


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    """(base URL, server) of a quiet HTTP server on 127.0.0.1 serving ``directory``, for the block's duration."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], http.server.ThreadingHTTPServer]]:
    """(base URL, sha256 per file, server) for a small bookmarks-like dataset served on 127.0.0.1."""
    texts = write_single(tmp_path / "www" / "bookmarks", "bookmarks", n=60)
    sha256 = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in texts.items()}
    with serve_directory(tmp_path / "www") as (url, server):
        yield url, sha256, server


def bookmarks_cfg(url: str, sha256: dict[str, str], cache_dir: Path) -> dict:
    return {"name": "bookmarks", "url": url, "sha256": sha256, "cache_dir": str(cache_dir)}


def test_download_verifies_and_lands_in_cache(served, tmp_path: Path) -> None:
    url, sha256, server = served
    ds = load_mlc(bookmarks_cfg(url, sha256, tmp_path / "cache"))
    downloads = tmp_path / "cache" / "downloads" / "mulan" / "bookmarks"
    assert sorted(p.name for p in downloads.iterdir()) == ["bookmarks.arff", "bookmarks.xml"]
    assert (len(ds.train) + len(ds.dev), len(ds.test), len(ds.dev)) == (40, 20, 4)
    split = ds.meta["train_test_split"]
    assert split == {"kind": "random", "seed": PRESETS["bookmarks"].split_seed, "test_fraction": 1 / 3}
    assert ds.meta["files"] == sha256
    server.shutdown()  # everything is cached now: no network needed
    again = load_mlc(bookmarks_cfg(url, sha256, tmp_path / "cache"))
    np.testing.assert_array_equal(again.test.labels, ds.test.labels)


def test_wrong_checksum_is_an_error_and_leaves_no_file(served, tmp_path: Path) -> None:
    url, sha256, _ = served
    wrong = {**sha256, "bookmarks.arff": "0" * 64}
    with pytest.raises(
        DataDownloadError, match=r"checksum mismatch for http://127\.0\.0\.1:\d+/bookmarks/bookmarks\.arff"
    ):
        load_mlc(bookmarks_cfg(url, wrong, tmp_path / "cache"))
    downloads = tmp_path / "cache" / "downloads" / "mulan" / "bookmarks"
    assert list(downloads.iterdir()) == []  # neither the file nor its temporary download remains


def test_existing_file_with_wrong_content_is_replaced(served, tmp_path: Path) -> None:
    url, sha256, _ = served
    dest = tmp_path / "dl" / "bookmarks.xml"
    dest.parent.mkdir()
    dest.write_text("stale")
    fetch(f"{url}/bookmarks/bookmarks.xml", dest, sha256["bookmarks.xml"])
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha256["bookmarks.xml"]


def test_http_error_is_a_download_error(served, tmp_path: Path) -> None:
    url, _, _ = served
    with pytest.raises(DataDownloadError, match=r"could not download .*/nothing\.arff: HTTP Error 404.*data\.root="):
        fetch(f"{url}/nothing.arff", tmp_path / "dl" / "nothing.arff", "0" * 64)
    assert not list((tmp_path / "dl").iterdir())


def test_unreachable_server_suggests_data_root(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(DataDownloadError) as info:
        load_mlc({"name": "bibtex", "url": url, "cache_dir": str(tmp_path / "cache")})
    message = str(info.value)
    assert f"could not download {url}/bibtex/bibtex-train.arff" in message
    assert "data.root=" in message and "Connection refused" in message
