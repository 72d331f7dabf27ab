"""How much the Parquet dataset cache speeds up :func:`infnet.data.load_mlc` (``python -m infnet.bench data``)."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from infnet.data import load_mlc


def measure_cache_speed(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Time ``load_mlc(cfg)`` with an empty temporary cache dir (parse + cache write), then again (cache read).

    With ``root`` unset the first load also downloads the files into that temporary dir.
    Returns ``{"name", "first_s", "cached_s", "ratio"}`` with ratio = first_s / cached_s.
    """
    with tempfile.TemporaryDirectory(prefix="infnet-cache-timing-") as cache_dir:
        cold = {**cfg, "cache_dir": cache_dir, "cache": True}
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            dataset = load_mlc(cold)
            seconds.append(time.perf_counter() - start)
    first, cached = seconds
    return {"name": dataset.name, "first_s": first, "cached_s": cached, "ratio": first / cached}


def main(argv: list[str]) -> None:
    """``python -m infnet.bench data --root DIR NAME [NAME ...]``: first vs cached load, side by side."""
    ap = argparse.ArgumentParser(prog="python -m infnet.bench data", description=measure_cache_speed.__doc__)
    ap.add_argument("names", nargs="*", default=["bibtex", "delicious"])
    ap.add_argument("--root", default=None, help="directory holding <name>/ (default: download)")
    args = ap.parse_args(argv)
    print("| dataset | first load (parse + cache write) s | cached load s | ratio |")
    print("|---|---|---|---|")
    for name in args.names:
        r = measure_cache_speed({"name": name, "root": args.root})
        print(f"| {r['name']} | {r['first_s']:.3f} | {r['cached_s']:.4f} | {r['ratio']:.0f}x |")
