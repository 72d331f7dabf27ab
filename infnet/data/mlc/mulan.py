"""MULAN datasets: the XML label file, and assembly of the ARFF files into an :class:`MLCDataset`.

Labels are the ARFF attributes named in the XML file, wherever they sit in the header; every other
attribute is a feature.  A dev split is carved from train with ``dev_seed`` / ``dev_fraction``, and
numeric features are standardised with train statistics (see :func:`infnet.data.mlc.standardize.standardize`):
scaled only if any row was sparse, centred and scaled if all rows were dense.  Nominal features keep
their value index.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from xml.parsers import expat

import numpy as np

from infnet.data.errors import DataFormatError, DataNotFoundError
from infnet.data.hashing import sha256_json
from infnet.data.mlc.arff import PARSER_VERSION, ArffData, Attribute, read_arff
from infnet.data.mlc.presets import MulanSpec
from infnet.data.mlc.quoting import unescape
from infnet.data.mlc.standardize import standardize
from infnet.data.mlc.types import MLCDataset, MLCSplit, SparseRows
from infnet.data.splits import random_split

_LABEL_VALUES = ("0", "1")


def mulan_paths(spec: MulanSpec, directory: str | Path) -> dict[str, Path]:
    """Paths of the files of ``spec`` (file name -> path) in ``directory``, which must all exist."""
    paths = {name: Path(directory) / name for name in spec.file_names}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise DataNotFoundError(f"MULAN dataset {spec.name!r}: missing file(s) {', '.join(missing)}")
    return paths


def read_labels(path: str | Path) -> dict[str, int]:
    """Label names of a MULAN XML file -> the 1-based line declaring them, in document order.

    Every ``<label name="...">`` element counts, inner and leaf labels of a hierarchy alike, with or
    without the ``http://mulan.sourceforge.net/labels`` namespace.  Names are unescaped like ARFF names.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"MULAN label file not found: {path}")
    labels: dict[str, int] = {}
    parser = expat.ParserCreate(namespace_separator="}")

    def start(tag: str, attributes: dict[str, str]) -> None:
        if tag.rsplit("}", 1)[-1] != "label":
            return
        line = parser.CurrentLineNumber
        if "name" not in attributes:
            raise DataFormatError(path, line, "<label> element without a name attribute")
        name = unescape(attributes["name"])
        if name in labels:
            raise DataFormatError(path, line, f"label {name!r} already declared on line {labels[name]}")
        labels[name] = line

    parser.StartElementHandler = start
    with path.open("rb") as handle:
        try:
            parser.ParseFile(handle)
        except expat.ExpatError as exc:
            raise DataFormatError(path, exc.lineno, f"invalid XML: {expat.errors.messages[exc.code]}") from exc
    if not labels:
        raise DataFormatError(path, None, "declares no <label> elements")
    return labels


def load_mulan(
    spec: MulanSpec, paths: Mapping[str, Path], dev_fraction: float, dev_seed: int, file_sha256: Mapping[str, str]
) -> MLCDataset:
    """Parse the files ``paths`` (from :func:`mulan_paths`) of ``spec`` into an MLCDataset.

    Splits hold features (N, F) as CSR and labels (N, L) uint8; ``file_sha256`` maps file names to
    their checksums and is recorded in ``meta["files"]``.
    """
    xml_path = paths[spec.xml_name]
    labels = read_labels(xml_path)
    arffs = [read_arff(paths[name]) for name in spec.arff_names]
    if len(arffs) == 2:
        _check_same_header(*arffs)
    label_columns = _label_columns(arffs[0], labels, xml_path)
    parts = [_split_columns(arff, label_columns) for arff in arffs]
    if spec.test_fraction is None:
        pool, test = parts
        train_test = {"kind": "official", "files": spec.arff_names}
    else:
        kept, held = random_split(len(parts[0]), spec.test_fraction, spec.split_seed)
        pool, test = parts[0].take(kept), parts[0].take(held)
        train_test = {"kind": "random", "seed": spec.split_seed, "test_fraction": spec.test_fraction}
    kept, held = random_split(len(pool), dev_fraction, dev_seed)
    train, dev = pool.take(kept), pool.take(held)

    is_label = np.zeros(len(arffs[0].attributes), dtype=bool)
    is_label[label_columns] = True
    feature_attributes = [a for a, flag in zip(arffs[0].attributes, is_label) if not flag]
    numeric = np.array([not a.is_nominal for a in feature_attributes], dtype=bool)
    sparse = any(arff.sparse for arff in arffs)
    train_x, (dev_x, test_x), scaling = standardize(train.features, [dev.features, test.features], numeric, not sparse)
    meta = {
        "format": "mulan",
        "parser_version": PARSER_VERSION,
        "files": dict(file_sha256),
        "relation": arffs[0].relation,
        "arff_sparse": sparse,
        "label_attribute_indices": label_columns.tolist(),
        "numeric_features": int(numeric.sum()),
        "nominal_features": int((~numeric).sum()),
        "missing_values": "error",
        "train_test_split": train_test,
        "dev_split": {"from": "train", "seed": dev_seed, "fraction": dev_fraction, "size": len(dev)},
        "standardization": scaling,
    }
    return MLCDataset(
        name=spec.name,
        train=MLCSplit(train_x, train.labels),
        dev=MLCSplit(dev_x, dev.labels),
        test=MLCSplit(test_x, test.labels),
        feature_names=[a.name for a in feature_attributes],
        label_names=list(labels),
        dev_seed=dev_seed,
        dev_fraction=dev_fraction,
        source_sha256=sha256_json(file_sha256),
        meta=meta,
    )


def _describe(attribute: Attribute) -> str:
    kind = "numeric" if attribute.values is None else "{" + ",".join(attribute.values) + "}"
    return f"{attribute.name!r} {kind}"


def _check_same_header(train: ArffData, test: ArffData) -> None:
    """Raise DataFormatError (naming the test file) unless both files declare the same attributes."""
    for number, (a, b) in enumerate(zip(train.attributes, test.attributes), start=1):
        if (a.name, a.values) != (b.name, b.values):
            message = f"attribute #{number} {_describe(b)} differs from {train.path}:{a.line} {_describe(a)}"
            raise DataFormatError(test.path, b.line, message)
    if len(train.attributes) != len(test.attributes):
        message = f"declares {len(test.attributes)} attributes but {train.path} declares {len(train.attributes)}"
        raise DataFormatError(test.path, None, message)


def _label_columns(arff: ArffData, labels: Mapping[str, int], xml_path: Path) -> np.ndarray:
    """ARFF attribute index (L,) int64 of each XML label, in XML order; labels must be {0,1} or numeric."""
    position = {attribute.name: index for index, attribute in enumerate(arff.attributes)}
    columns = []
    for name, line in labels.items():
        if name not in position:
            raise DataFormatError(xml_path, line, f"label {name!r} is not an attribute of {arff.path}")
        attribute = arff.attributes[position[name]]
        if attribute.values not in (None, _LABEL_VALUES):
            raise DataFormatError(
                arff.path, attribute.line, f"label attribute {_describe(attribute)} must be declared {{0,1}} or numeric"
            )
        columns.append(position[name])
    return np.array(columns, dtype=np.int64)


def _split_columns(arff: ArffData, label_columns: np.ndarray) -> MLCSplit:
    """Separate the ARFF rows into feature CSR (N, F) with re-indexed columns and labels (N, L) uint8."""
    rows = arff.rows
    n_rows, n_labels = len(rows), len(label_columns)
    label_of = np.full(rows.n_cols, -1, dtype=np.int64)
    label_of[label_columns] = np.arange(n_labels)
    feature_of = np.cumsum(label_of < 0) - 1
    row_ids = np.repeat(np.arange(n_rows), np.diff(rows.indptr))
    label_ids = label_of[rows.indices]
    is_label = label_ids >= 0
    bad = np.flatnonzero(is_label & (rows.values != 1))
    if bad.size:
        k = int(bad[0])
        name = arff.attributes[rows.indices[k]].name
        message = f"label {name!r} has value {rows.values[k]:g}; labels must be 0 or 1"
        raise DataFormatError(arff.path, int(arff.row_lines[row_ids[k]]), message)
    labels = np.zeros((n_rows, n_labels), dtype=np.uint8)
    labels[row_ids[is_label], label_ids[is_label]] = 1
    is_feature = ~is_label
    counts = np.bincount(row_ids[is_feature], minlength=n_rows)
    features = SparseRows(
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        feature_of[rows.indices[is_feature]].astype(np.int32),
        rows.values[is_feature],
        rows.n_cols - n_labels,
    )
    return MLCSplit(features, labels)
