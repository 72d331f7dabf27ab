"""The streaming ARFF parser: dense/sparse equivalence, quoting, and malformed input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_data_helpers import ATTRIBUTES, arff_text, make_rows

from infnet.data.errors import DataFormatError, DataNotFoundError
from infnet.data.mlc.arff import read_arff

HEADER = "@relation t\n@attribute a numeric\n@attribute b {x,y,z}\n@attribute c {0,1}\n@data\n"


def write(tmp_path: Path, text: str, name: str = "t.arff") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_dense_and_sparse_rows_give_identical_csr(tmp_path: Path) -> None:
    rows = make_rows(25, seed=0)
    dense = read_arff(write(tmp_path, arff_text(rows, sparse=False), "dense.arff"))
    sparse = read_arff(write(tmp_path, arff_text(rows, sparse=True), "sparse.arff"))
    assert not dense.sparse and sparse.sparse
    for field in ("indptr", "indices", "values"):
        np.testing.assert_array_equal(getattr(dense.rows, field), getattr(sparse.rows, field))
    np.testing.assert_allclose(dense.rows.dense().numpy(), rows, rtol=1e-6)
    assert dense.rows.indices.dtype == np.int32 and dense.rows.values.dtype == np.float32
    assert dense.rows.indptr.dtype == np.int64
    assert [a.name for a in dense.attributes] == ["lab_a", "x1", "lab_c", "color", "it's", "x2", "n3"]
    assert dense.attributes[3].values == ("red", "green", "dark blue")
    assert [a.is_nominal for a in dense.attributes] == [isinstance(kind, tuple) for _, kind, _ in ATTRIBUTES]
    assert dense.relation == "generic"


def test_nominal_values_map_to_declaration_index(tmp_path: Path) -> None:
    text = "@RELATION t\n@ATTRIBUTE a {1,0}\n@attribute b {'p q',r}\n@DaTa\n0,r\n1,'p q'\n"
    data = read_arff(write(tmp_path, text))
    np.testing.assert_array_equal(data.rows.dense().numpy(), [[1, 1], [0, 0]])


def test_comments_blank_lines_crlf_and_row_lines(tmp_path: Path) -> None:
    text = (
        "% c\r\n@relation t\r\n\r\n@attribute a numeric\r\n%x\r\n@attribute b numeric\r\n@data\r\n"
        "1,2\r\n% mid\r\n\r\n0,0\r\n3,0"
    )
    data = read_arff(write(tmp_path, text))
    np.testing.assert_array_equal(data.rows.dense().numpy(), [[1, 2], [0, 0], [3, 0]])
    np.testing.assert_array_equal(data.row_lines, [8, 11, 12])


def test_sparse_rows_sorted_zeros_dropped_empty_allowed(tmp_path: Path) -> None:
    data = read_arff(write(tmp_path, HEADER + "{2 1, 0 2.5}\n{}\n{0 0, 1 y}\n{1 'z'}\n"))
    np.testing.assert_array_equal(data.rows.indptr, [0, 2, 2, 3, 4])
    np.testing.assert_array_equal(data.rows.indices, [0, 2, 1, 1])
    np.testing.assert_array_equal(data.rows.values, [2.5, 1, 1, 2])


def test_escaped_bare_and_quoted_names(tmp_path: Path) -> None:
    text = (
        '@relation t\n@attribute TAG_m\\\'usica {0,1}\n@attribute "two words" numeric\n'
        "@attribute 'q\\'d' real\n@data\n{0 1}\n"
    )
    names = [a.name for a in read_arff(write(tmp_path, text)).attributes]
    assert names == ["TAG_m'usica", "two words", "q'd"]


MALFORMED = {
    "unknown attribute index": (HEADER + "{0 1, 7 1}\n", 6, "unknown attribute index 7"),
    "non-integer index": (HEADER + "{0 1}\n{a 1}\n", 7, "is not an integer"),
    "bad nominal value": (HEADER + "1,x,0\n2,w,1\n", 7, "'w' is not one of the declared values {x,y,z}"),
    "bad numeric value": (HEADER + "1,x,0\nabc,x,1\n", 7, "'abc' of numeric attribute 'a'"),
    "missing value": (HEADER + "?,x,0\n", 6, "missing value '?'"),
    "too few dense columns": (HEADER + "1,x,0\n1,x\n", 7, "expected 3 comma-separated values, found 2"),
    "too many dense columns": (HEADER + "1,x,0,1\n", 6, "expected 3 comma-separated values, found 4"),
    "empty dense value": (HEADER + "1,,0\n", 6, "empty value in column 2"),
    "unclosed sparse row": (HEADER + "{0 1, 2 1\n{0 1}\n", 6, "sparse row not closed"),
    "bad sparse entry": (HEADER + "{0 1 2, 2 1}\n", 6, "is not '<index> <value>'"),
    "repeated sparse index": (HEADER + "{0 1}\n{2 1, 2 0}\n", 7, "appears twice"),
    "eof inside sparse row": (HEADER + "{0 1}\n{0 1, 2", 7, "file ends inside a row"),
    "eof inside dense row": (HEADER + "1,x,0\n1,y", 7, "file ends inside a row"),
    "eof inside quote": (HEADER + "1,x,0\n1,'y", 7, "file ends inside a row: unterminated quote"),
    "missing @data": ("@relation t\n@attribute a numeric\n\n", 3, "without an @data section"),
    "empty file": ("", 1, "without an @data section"),
    "data before attributes": ("@relation t\n@data\n1\n", 2, "@data before any @attribute"),
    "junk in header": ("@relation t\nhello\n", 2, "expected @relation, @attribute or @data"),
    "unsupported type": ("@relation t\n@attribute s string\n@data\n", 2, "type 'string' is not supported"),
    "unknown type": ("@relation t\n@attribute s float\n@data\n", 2, "unknown type 'float'"),
    "unclosed nominal": ("@relation t\n@attribute s {a,b\n@data\n", 2, "not closed by '}'"),
    "empty nominal": ("@relation t\n@attribute s {}\n@data\n", 2, "lists no values"),
    "repeated nominal": ("@relation t\n@attribute s {a,a}\n@data\n", 2, "nominal values repeat"),
    "repeated attribute": ("@relation t\n@attribute s numeric\n@attribute s real\n@data\n", 3, "declared on line 2"),
    "unterminated quoted name": ("@relation t\n@attribute 'abc numeric\n@data\n", 2, "unterminated quote"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_names_file_and_line(tmp_path: Path, case: str) -> None:
    text, line, fragment = MALFORMED[case]
    path = write(tmp_path, text, "bad-input.arff")
    with pytest.raises(DataFormatError) as info:
        read_arff(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message
    assert info.value.line == line and info.value.path == str(path)


def test_invalid_utf8_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.arff"
    path.write_bytes(b"@relation t\n@attribute a {\xe9,b}\n@data\n")
    with pytest.raises(DataFormatError, match=r"latin\.arff:2: not valid UTF-8"):
        read_arff(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="nope.arff"):
        read_arff(tmp_path / "nope.arff")


def test_chunked_conversion_matches_single_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = make_rows(40, seed=5)
    path = write(tmp_path, arff_text(rows, sparse=True))
    whole = read_arff(path)
    monkeypatch.setattr("infnet.data.mlc.arff._CHUNK_TOKENS", 7)
    chunked = read_arff(path)
    for field in ("indptr", "indices", "values"):
        np.testing.assert_array_equal(getattr(whole.rows, field), getattr(chunked.rows, field))
    np.testing.assert_array_equal(whole.row_lines, chunked.row_lines)
    bad = path.read_text().splitlines()
    bad[30] = "{0 1, 3 purple}"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataFormatError, match=r":31: value 'purple' is not one of the declared values"):
        read_arff(path)
