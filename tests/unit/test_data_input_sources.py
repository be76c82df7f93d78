"""Bad CSV and npz input refused by the readers, before the database is touched:
loader-owned columns, regression targets, missing-value markers, labels PostgreSQL
cannot store, and numbers that would change silently."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from automl_core.data.sources import read_source
from automl_core.data.validate import infer_labels
from automl_core.errors import UserInputError


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "d.csv"
    path.write_text(text, encoding="utf-8")
    return f"csv:{path}"


def _npz(tmp_path: Path, **arrays: object) -> str:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return f"npz:{path}"


# --- A: columns the loader fills itself ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "column"),
    [
        ("id,a,b,label\n1001,1,2,0\n1002,3,4,1\n1003,5,6,1\n", "id", 1),
        ("a,ID,label\n1,7,0\n2,8,1\n", "ID", 2),
        ("a,Split,label\n1,train,0\n2,test,1\n", "Split", 2),
    ],
)
def test_a_csv_column_named_id_or_split_is_refused(
    tmp_path: Path, text: str, name: str, column: int
) -> None:
    with pytest.raises(UserInputError) as info:
        read_source(_csv(tmp_path, text))
    message = str(info.value)
    assert f"has a column {name!r} (column {column})" in message
    assert "assigns the row ids itself, in file order (0..n-1), and the split itself" in message
    assert "drop or rename that column" in message


# --- B: labels that are not classes --------------------------------------------------------


def test_a_csv_regression_target_is_refused_naming_the_line(tmp_path: Path) -> None:
    spec = _csv(tmp_path, "a,label\n1,1\n2,0.5\n3,2\n")
    with pytest.raises(UserInputError, match=r"non-integral floats \(first: '0.5' at line 3\)"):
        read_source(spec)


def test_csv_numbers_with_integral_values_are_integer_labels(tmp_path: Path) -> None:
    data = read_source(_csv(tmp_path, "a,label\n1,1e3\n2,1\n3,20.0\n"))
    assert data.label_type == "integer" and data.parts[0].labels.tolist() == [1000, 1, 20]


@pytest.mark.parametrize("marker", ["NA", "n/a", "N/A", "NaN", "nan", "NULL", "null", "None"])
def test_a_missing_value_marker_is_not_a_class(tmp_path: Path, marker: str) -> None:
    spec = _csv(tmp_path, f"a,label\n1,cat\n2,{marker}\n3,dog\n")
    with pytest.raises(UserInputError, match=rf"line 3: the label '{marker}' marks a missing"):
        read_source(spec)
    spec = _npz(tmp_path, x=np.ones((3, 2)), y=np.array(["cat", "dog", marker]))
    with pytest.raises(UserInputError, match=rf"row 2: the label '{marker}' marks a missing"):
        read_source(spec)


def test_a_marker_in_the_test_split_is_named_by_its_split(tmp_path: Path) -> None:
    y_test = np.array(["a", "NULL"])
    spec = _npz(
        tmp_path, x=np.ones((2, 2)), y=np.array(["a", "b"]), x_test=np.ones((2, 2)), y_test=y_test
    )
    with pytest.raises(UserInputError, match="row 1 of the test split: the label 'NULL'"):
        read_source(spec)


def test_more_classes_than_half_the_rows_is_refused(tmp_path: Path) -> None:
    # 20 rows: 10 classes is classification, 11 is not; below 20 rows anything goes.
    assert infer_labels(np.arange(20) % 10, source="s")[1] == "integer"
    assert infer_labels(np.arange(19), source="s")[1] == "integer"
    with pytest.raises(UserInputError, match="11 distinct values in 20 rows.*repeated labels"):
        infer_labels(np.arange(20) % 11, source="s")
    rows = "".join(f"{i},{1000 + i}\n" for i in range(30))
    with pytest.raises(UserInputError, match=r"30 distinct values in 30 rows.*--label-column"):
        read_source(_csv(tmp_path, "a,label\n" + rows))
    names = np.array([f"user{i}" for i in range(25)])
    with pytest.raises(UserInputError, match="25 distinct values in 25 rows"):
        read_source(_npz(tmp_path, x=np.ones((25, 2)), y=names))


# --- C: input that used to end in a traceback ----------------------------------------------


def test_a_nul_in_a_text_label_is_refused_naming_the_row(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"line 3: the label 'd\\x00g' contains a NUL"):
        read_source(_csv(tmp_path, "a,label\n1,cat\n2,d\x00g\n"))
    spec = _npz(tmp_path, x=np.ones((2, 2)), y=np.array(["a", "b\x00c"]))
    with pytest.raises(UserInputError, match="row 1: the label 'b\\\\x00c' contains a NUL"):
        read_source(spec)


def test_an_npz_of_zero_dimensional_arrays_is_refused(tmp_path: Path) -> None:
    spec = _npz(tmp_path, x=np.float32(3), y=np.int64(1))
    with pytest.raises(
        UserInputError, match=r"labels of npz:.* have shape \(\): expected \[rows\]"
    ):
        read_source(spec)


def test_npz_byte_labels_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    spec = _npz(tmp_path, x=np.ones((2, 2)), y=np.array([b"\xff", b"a"]))
    with pytest.raises(UserInputError, match=r"row 0: the label b'\\xff' is not UTF-8 text"):
        read_source(spec)


def test_a_label_that_is_not_valid_unicode_is_refused(tmp_path: Path) -> None:
    spec = _npz(tmp_path, x=np.ones((2, 2)), y=np.array(["a", "\ud800"]))
    with pytest.raises(UserInputError, match="row 1: .* invalid Unicode"):
        read_source(spec)


# --- D: numbers that would change silently -------------------------------------------------


@pytest.mark.parametrize(
    "x", [np.ones((2, 2)) + 1j, np.ones((2, 2), dtype="m8[s]")], ids=["complex", "timedelta"]
)
def test_features_that_are_not_real_numbers_are_refused(tmp_path: Path, x: np.ndarray) -> None:
    spec = _npz(tmp_path, x=x, y=np.array([0, 1]))
    with pytest.raises(UserInputError, match=re.escape(f"dtype {x.dtype}, which is not numeric")):
        read_source(spec)


def test_complex_labels_are_refused(tmp_path: Path) -> None:
    spec = _npz(tmp_path, x=np.ones((2, 2)), y=np.array([0, 1]) + 0j)
    with pytest.raises(UserInputError, match="dtype complex128: class labels must be integers"):
        read_source(spec)


@pytest.mark.parametrize(
    "y",
    [np.array([1, 2**63], dtype=np.uint64), np.array([1.0, 1e20]), np.array([1.0, 2.0**63])],
    ids=["uint64", "float", "float-2**63"],
)
def test_labels_outside_int64_are_refused(tmp_path: Path, y: np.ndarray) -> None:
    spec = _npz(tmp_path, x=np.ones((2, 2)), y=y)
    with pytest.raises(UserInputError, match="row 1: the label .* outside the 64-bit integer"):
        read_source(spec)


def test_csv_labels_outside_int64_are_refused(tmp_path: Path) -> None:
    spec = _csv(tmp_path, "a,label\n1,1\n2,99999999999999999999\n")
    with pytest.raises(UserInputError, match="line 3: the label 99999999999999999999 is outside"):
        read_source(spec)
    spec = _csv(tmp_path, "a,label\n1,1\n2,1e999999999\n")
    with pytest.raises(UserInputError, match="line 3: the label 1e999999999 is outside"):
        read_source(spec)


@pytest.mark.parametrize("value", ["1_000", "\u0661\u0662"], ids=["underscore", "arabic-digits"])
def test_csv_features_are_plain_ascii_numbers_like_labels(tmp_path: Path, value: str) -> None:
    spec = _csv(tmp_path, f"a,b,label\n1,2,0\n3,{value},1\n")
    with pytest.raises(UserInputError, match=f"line 3: the feature value '{value}' is not a plain"):
        read_source(spec)
    # The same forms are not numbers as labels either: they are text classes.
    assert infer_labels(np.array([value, "2"], dtype=object), source="s")[1] == "text"
