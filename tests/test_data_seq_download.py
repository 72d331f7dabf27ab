"""Downloading the open tagging presets (wnut17, ud_ewt) from a real local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_data_download import serve_directory

from infnet.data import DataDownloadError, load_seq
from infnet.data.seq.presets import SEQ_PRESETS, UD_EWT_BASE_URL, WNUT17_BASE_URL

WNUT_TEXT = "Hi\tO\nAda\tB-person\nLovelace\tI-person\n\t\nbye\tO\n"
UD_TEXT = "# sent_id = 1\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n2\t!\t!\tPUNCT\t.\t_\t1\tpunct\t_\t_\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], http.server.ThreadingHTTPServer]]:
    """(base URL, sha256 per file, server) for small wnut17 and ud_ewt files served on 127.0.0.1."""
    sha256 = {}
    for name in ("wnut17", "ud_ewt"):
        for file_name in SEQ_PRESETS[name].files.values():
            text = WNUT_TEXT if name == "wnut17" else UD_TEXT
            (tmp_path / "www" / file_name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "www" / file_name).write_text(text)
            sha256[file_name] = hashlib.sha256(text.encode()).hexdigest()
    with serve_directory(tmp_path / "www") as (url, server):
        yield url, sha256, server


@pytest.mark.parametrize("name", ["wnut17", "ud_ewt"])
def test_download_verifies_and_lands_in_cache(served, tmp_path: Path, name: str) -> None:
    url, sha256, server = served
    cfg = {"name": name, "url": url, "sha256": sha256, "cache_dir": str(tmp_path / "cache")}
    ds = load_seq(cfg)
    downloads = tmp_path / "cache" / "downloads" / "seq" / name
    assert sorted(p.name for p in downloads.iterdir()) == sorted(SEQ_PRESETS[name].files.values())
    assert (len(ds.train), len(ds.dev), len(ds.test)) == ((2, 2, 2) if name == "wnut17" else (1, 1, 1))
    assert ds.meta["files"] == {f: sha256[f] for f in SEQ_PRESETS[name].files.values()}
    server.shutdown()  # everything is cached now: no network needed
    assert load_seq({**cfg, "cache": False}).train.tags == ds.train.tags


def test_wrong_checksum_is_an_error_and_leaves_no_file(served, tmp_path: Path) -> None:
    url, sha256, _ = served
    wrong = {**sha256, "wnut17train.conll": "0" * 64}
    with pytest.raises(DataDownloadError, match=r"checksum mismatch for http://127\.0\.0\.1:\d+/wnut17train\.conll"):
        load_seq({"name": "wnut17", "url": url, "sha256": wrong, "cache_dir": str(tmp_path / "cache")})
    assert list((tmp_path / "cache" / "downloads" / "seq" / "wnut17").iterdir()) == []


def test_public_locations_are_pinned_commits() -> None:
    assert SEQ_PRESETS["wnut17"].url == WNUT17_BASE_URL and SEQ_PRESETS["ud_ewt"].url == UD_EWT_BASE_URL
    for url in (WNUT17_BASE_URL, UD_EWT_BASE_URL):
        assert url.startswith("https://raw.githubusercontent.com/") and len(url.rsplit("/", 1)[1]) == 40
    assert SEQ_PRESETS["conll2003"].url is None  # not redistributable
    for name in ("wnut17", "ud_ewt"):  # every downloaded file has a known checksum
        assert set(SEQ_PRESETS[name].files.values()) <= set(SEQ_PRESETS[name].sha256)
