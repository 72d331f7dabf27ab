"""Shared helpers for the ``test_data_*`` tests: small MULAN datasets written to disk, real-data paths.

The generic dataset mixes numeric and nominal features with labels placed first, in the middle and
with a quoted, escaped name; its XML label file is hierarchical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# name as written in the ARFF header, kind: "numeric" or a tuple of nominal values, role
ATTRIBUTES = [
    ("lab_a", ("0", "1"), "label"),
    ("x1", "numeric", "feature"),
    ("lab_c", "numeric", "label"),
    ("color", ("red", "green", "'dark blue'"), "feature"),
    ("'it\\'s'", ("0", "1"), "label"),
    ("x2", "real", "feature"),
    ("n3", "integer", "feature"),
]
FEATURE_NAMES = ["x1", "color", "x2", "n3"]
LABEL_NAMES = ["lab_a", "it's", "lab_c"]  # XML order, not ARFF order
LABELS_XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
  <label name="lab_a">
    <label name="it\\'s"></label>
    <label name="lab_c"/>
  </label>
</labels>
"""


def shared_mulan_dir(name: str) -> Path:
    """The real MULAN dataset folder under ../shared/data, or skip the test if it is absent."""
    directory = SHARED_DATA / "mulan" / name
    if not directory.is_dir():
        pytest.skip(f"real benchmark data not available at {directory}")
    return directory


def make_rows(n: int, seed: int) -> np.ndarray:
    """(n, 7) raw attribute values in ARFF order; nominal attributes hold value indices."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, len(ATTRIBUTES)))
    rows[:, [0, 2, 4]] = rng.integers(0, 2, size=(n, 3))
    rows[:, 1] = np.round(rng.normal(2.0, 3.0, n), 3) * (rng.random(n) < 0.8)
    rows[:, 3] = rng.integers(0, 3, n)
    rows[:, 5] = np.round(rng.normal(-1.0, 0.5, n), 3)
    rows[:, 6] = rng.integers(0, 5, n)
    return rows


def _value_text(column: int, value: float) -> str:
    kind = ATTRIBUTES[column][1]
    return kind[int(value)] if isinstance(kind, tuple) else f"{value:g}"


def arff_text(rows: np.ndarray, sparse: bool, relation: str = "generic") -> str:
    """ARFF text for ``rows`` (from :func:`make_rows`) in dense or sparse form."""
    lines = [f"% generated test data\n@RELATION {relation}", ""]
    for name, kind, _ in ATTRIBUTES:
        declared = "{" + ",".join(kind) + "}" if isinstance(kind, tuple) else kind.upper()
        lines.append(f"@Attribute {name} {declared}")
    lines += ["", "@DATA", "% rows follow"]
    for row in rows:
        if sparse:
            entries = [f"{j} {_value_text(j, v)}" for j, v in enumerate(row) if v != 0]
            lines.append("{" + ", ".join(entries) + "}")
        else:
            lines.append(",".join(_value_text(j, v) for j, v in enumerate(row)))
    return "\n".join(lines) + "\n"


def write_generic(directory: Path, stem: str, sparse: bool, n_train: int = 30, n_test: int = 12) -> dict:
    """Write ``<stem>-train.arff``, ``<stem>-test.arff`` and ``<stem>.xml``; returns the raw rows per split."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = {"train": make_rows(n_train, seed=1), "test": make_rows(n_test, seed=2)}
    for split, values in rows.items():
        (directory / f"{stem}-{split}.arff").write_text(arff_text(values, sparse))
    (directory / f"{stem}.xml").write_text(LABELS_XML)
    return rows


def write_single(directory: Path, stem: str, n: int) -> dict[str, str]:
    """Write ``<stem>.arff`` (sparse, n rows) and ``<stem>.xml`` (a bookmarks-like layout); returns their texts."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = {f"{stem}.arff": arff_text(make_rows(n, seed=3), sparse=True), f"{stem}.xml": LABELS_XML}
    for name, text in texts.items():
        (directory / name).write_text(text)
    return texts


def expected_split(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 4) raw, labels (N, 3) uint8) expected from raw ``rows``."""
    return rows[:, [1, 3, 5, 6]], rows[:, [0, 4, 2]].astype(np.uint8)
