"""Generic MULAN datasets: label placement, hierarchy, standardisation, dev split and errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import FEATURE_NAMES, LABEL_NAMES, LABELS_XML, expected_split, write_generic

from infnet.data import DataFormatError, DataNotFoundError, load_mlc
from infnet.data.errors import DataConfigError
from infnet.data.mlc.mulan import read_labels
from infnet.data.splits import random_split

NUMERIC = [0, 2, 3]  # x1, x2, n3 among the features; column 1 (color) is nominal


def where(path: Path, line: int | None = None) -> str:
    """Regex for the ``<file>:<line>: `` prefix of a DataFormatError message."""
    return re.escape(f"{path}: " if line is None else f"{path}:{line}: ")


def load(root: Path, **extra: object):
    return load_mlc({"name": "toy", "root": str(root), "cache": False, **extra})


@pytest.mark.parametrize("sparse", [False, True])
def test_generic_dataset_features_and_labels(tmp_path: Path, sparse: bool) -> None:
    rows = write_generic(tmp_path, "toy", sparse=sparse)
    ds = load(tmp_path, dev_fraction=0.0)
    assert ds.feature_names == FEATURE_NAMES and ds.label_names == LABEL_NAMES
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (30, 0, 12)
    raw_train, labels_train = expected_split(rows["train"])
    raw_test, labels_test = expected_split(rows["test"])
    np.testing.assert_array_equal(ds.train.labels, labels_train)
    np.testing.assert_array_equal(ds.test.labels, labels_test)
    assert ds.train.labels.dtype == np.uint8

    mean = np.where(np.isin(np.arange(4), NUMERIC), raw_train.mean(0), 0.0) * (not sparse)
    std = np.where(np.isin(np.arange(4), NUMERIC), raw_train.std(0), 1.0)
    for split, raw in ((ds.train, raw_train), (ds.test, raw_test)):
        np.testing.assert_allclose(split.features.dense().numpy(), (raw - mean) / std, rtol=1e-5, atol=1e-5)
    scaling = ds.meta["standardization"]
    assert scaling["mode"] == ("scale" if sparse else "center_scale") and scaling["numeric_columns"] == 3
    assert ds.meta["arff_sparse"] is sparse
    assert ds.meta["label_attribute_indices"] == [0, 4, 2]


def test_sparse_and_dense_files_agree_up_to_centering(tmp_path: Path) -> None:
    write_generic(tmp_path / "dense", "toy", sparse=False)
    write_generic(tmp_path / "sparse", "toy", sparse=True)
    dense, sparse = load(tmp_path / "dense"), load(tmp_path / "sparse")
    shift = np.array(dense.meta["standardization"]["mean"]) / np.array(dense.meta["standardization"]["std"])
    for a, b in ((dense.train, sparse.train), (dense.dev, sparse.dev), (dense.test, sparse.test)):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.features.dense().numpy() + shift, b.features.dense().numpy(), atol=1e-5)


def test_dev_split_is_seeded_disjoint_and_recorded(tmp_path: Path) -> None:
    rows = write_generic(tmp_path, "toy", sparse=True)
    ds = load(tmp_path, dev_fraction=0.2, dev_seed=7)
    kept, held = random_split(30, 0.2, 7)
    assert len(held) == 6 and np.intersect1d(kept, held).size == 0 and len(kept) + len(held) == 30
    np.testing.assert_array_equal(ds.dev.labels, expected_split(rows["train"][held])[1])
    np.testing.assert_array_equal(ds.train.labels, expected_split(rows["train"][kept])[1])
    assert (ds.dev_seed, ds.dev_fraction) == (7, 0.2)
    assert ds.meta["dev_split"] == {"from": "train", "seed": 7, "fraction": 0.2, "size": 6}
    again, other = load(tmp_path, dev_fraction=0.2, dev_seed=7), load(tmp_path, dev_fraction=0.2, dev_seed=8)
    np.testing.assert_array_equal(again.dev.features.indices, ds.dev.features.indices)
    assert not np.array_equal(random_split(30, 0.2, 8)[1], held)
    assert other.dev_seed == 8


def test_hierarchical_xml_collects_inner_and_leaf_labels(tmp_path: Path) -> None:
    path = tmp_path / "h.xml"
    path.write_text(LABELS_XML)
    assert read_labels(path) == {"lab_a": 3, "it's": 4, "lab_c": 5}


def test_label_missing_from_arff(tmp_path: Path) -> None:
    write_generic(tmp_path, "toy", sparse=True)
    xml = tmp_path / "toy.xml"
    xml.write_text(LABELS_XML.replace('<label name="lab_c"/>', '<label name="lab_c"/>\n    <label name="ghost"/>'))
    with pytest.raises(
        DataFormatError, match=where(xml, 6) + r"label 'ghost' is not an attribute of .*toy-train\.arff"
    ):
        load(tmp_path)


def test_train_and_test_headers_must_agree(tmp_path: Path) -> None:
    write_generic(tmp_path, "toy", sparse=True)
    test_file = tmp_path / "toy-test.arff"
    test_file.write_text(test_file.read_text().replace("@Attribute x2 REAL", "@Attribute x2b REAL"))
    with pytest.raises(
        DataFormatError, match=where(test_file, 9) + r"attribute #6 'x2b' numeric differs from .*toy-train\.arff:9"
    ):
        load(tmp_path)


def test_label_values_must_be_binary(tmp_path: Path) -> None:
    write_generic(tmp_path, "toy", sparse=True)
    train = tmp_path / "toy-train.arff"
    lines = train.read_text().splitlines()
    lines[15] = "{1 0.5, 2 2}"
    train.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=where(train, 16) + r"label 'lab_c' has value 2; labels must be 0 or 1"):
        load(tmp_path)


def test_nominal_label_must_be_declared_0_1(tmp_path: Path) -> None:
    write_generic(tmp_path, "toy", sparse=True)
    train = tmp_path / "toy-train.arff"
    for name in ("toy-train.arff", "toy-test.arff"):
        path = tmp_path / name
        path.write_text(path.read_text().replace("@Attribute lab_a {0,1}", "@Attribute lab_a {0,1,2}"))
    with pytest.raises(DataFormatError, match=where(train, 4) + r"label attribute 'lab_a' \{0,1,2\} must be declared"):
        load(tmp_path)


def test_invalid_xml_names_file_and_line(tmp_path: Path) -> None:
    write_generic(tmp_path, "toy", sparse=True)
    xml = tmp_path / "toy.xml"
    xml.write_text('<labels xmlns="http://mulan.sourceforge.net/labels">\n<label name="lab_a">\n</labels>\n')
    with pytest.raises(DataFormatError, match=where(xml, 3) + r"invalid XML: mismatched tag"):
        load(tmp_path)
    xml.write_text("<labels>\n<label/>\n</labels>\n")
    with pytest.raises(DataFormatError, match=where(xml, 2) + r"<label> element without a name"):
        load(tmp_path)
    xml.write_text("<labels/>\n")
    with pytest.raises(DataFormatError, match=where(xml) + r"declares no <label> elements"):
        load(tmp_path)


def test_missing_files_are_named(tmp_path: Path) -> None:
    write_generic(tmp_path, "toy", sparse=True)
    (tmp_path / "toy-test.arff").unlink()
    with pytest.raises(DataNotFoundError, match=r"missing file\(s\) .*toy-test\.arff"):
        load(tmp_path)
    with pytest.raises(DataNotFoundError, match="other-train.arff"):
        load_mlc({"name": "other", "root": str(tmp_path)})


def test_root_may_be_the_parent_folder(tmp_path: Path) -> None:
    write_generic(tmp_path / "toy", "toy", sparse=True)
    assert len(load(tmp_path).test) == 12


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(DataConfigError, match="unknown data config key"):
        load_mlc({"name": "toy", "roott": str(tmp_path)})
    with pytest.raises(DataConfigError, match="kind must be one of"):
        load_mlc({"name": "toy", "kind": "csv"})
    with pytest.raises(DataConfigError, match="unknown MULAN dataset 'toy'.*data.root="):
        load_mlc({"name": "toy", "cache_dir": str(tmp_path)})
    write_generic(tmp_path, "toy", sparse=True)
    with pytest.raises(DataConfigError, match=r"fraction must be in \[0, 1\)"):
        load(tmp_path, dev_fraction=1.5)
