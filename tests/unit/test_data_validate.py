"""Name, feature and label checks of automl_core.data.validate."""

from __future__ import annotations

import numpy as np
import pytest

from automl_core.data.validate import (
    as_feature_array,
    check_classes,
    check_finite,
    infer_labels,
    packed_table_name,
    validate_table_name,
)
from automl_core.errors import UserInputError


@pytest.mark.parametrize("name", ["digits", "_x", "A1_b2", "x" * 63])
def test_plain_names_pass(name: str) -> None:
    assert validate_table_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1abc",
        "a.b",
        'a"b',
        "a'b",
        "x; DROP TABLE y",
        "a b",
        "a-b",
        "x" * 64,
        "tåble",
        "digits\n",
    ],
)
def test_injection_and_odd_names_are_refused(name: str) -> None:
    with pytest.raises(UserInputError, match="not a plain SQL identifier"):
        validate_table_name(name)


def test_packed_name_must_fit_63_characters() -> None:
    assert packed_table_name("x" * 56) == "x" * 56 + "_packed"
    with pytest.raises(UserInputError, match="at most 56 characters"):
        packed_table_name("x" * 57)


def test_features_become_contiguous_float32() -> None:
    x = np.arange(24, dtype=np.int64).reshape(2, 3, 4)[:, ::-1]
    out = as_feature_array(x, source="s")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, x.astype(np.float32))


def test_ragged_features_are_refused() -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1.0, 2.0], [3.0]
    with pytest.raises(UserInputError, match="ragged or non-numeric"):
        as_feature_array(ragged, source="npz:f")


def test_text_features_are_refused() -> None:
    with pytest.raises(UserInputError, match="not numeric"):
        as_feature_array(np.array([["a", "b"]]), source="npz:f")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_features_are_refused(bad: float) -> None:
    x = np.zeros((5, 3))
    x[3, 1] = bad  # 1e39 overflows float32 to inf
    with pytest.raises(
        UserInputError, match=r"1 row\(s\) with NaN or infinite features \(first: row 3\)"
    ):
        as_feature_array(x, source="s")


def test_check_finite_names_row_ids() -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    x[2, 0] = np.nan
    x[3, 1] = np.inf
    with pytest.raises(UserInputError, match=r"2 row\(s\).*first: line 12"):
        check_finite(x, source="s", row_ids=np.array([9, 10, 12, 13]), row_label="line")


@pytest.mark.parametrize("shape", [(0, 3), (3,), (3, 0)])
def test_features_need_rows_and_columns(shape: tuple[int, ...]) -> None:
    with pytest.raises(UserInputError, match="at least one row and one feature"):
        as_feature_array(np.zeros(shape), source="s")


def test_row_count_must_match_labels() -> None:
    with pytest.raises(UserInputError, match="3 feature rows but 2 labels"):
        as_feature_array(np.zeros((3, 2)), source="s", n_rows=2)


@pytest.mark.parametrize(
    ("values", "expected", "sql_type"),
    [
        (np.array([3, 1, 2]), [3, 1, 2], "integer"),
        (np.array([True, False]), [1, 0], "integer"),
        (np.array([1.0, 0.0, 2.0]), [1, 0, 2], "integer"),
        (np.array(["3", " -1", "+2"], dtype=object), [3, -1, 2], "integer"),
        (np.array([2**40, 1]), [2**40, 1], "bigint"),
    ],
)
def test_integer_labels(values: np.ndarray, expected: list[int], sql_type: str) -> None:
    labels, kind = infer_labels(values, source="s")
    assert kind == sql_type
    assert labels.dtype == np.int64 and labels.tolist() == expected


@pytest.mark.parametrize("values", [["cat", "dog"], ["1", "cat"], ["1_000", "2"], ["1.5", "x"]])
def test_text_labels(values: list[str]) -> None:
    labels, kind = infer_labels(np.array(values, dtype=object), source="s")
    assert kind == "text"
    assert labels.tolist() == values


def test_bad_labels_are_refused() -> None:
    with pytest.raises(UserInputError, match="non-integral floats"):
        infer_labels(np.array([0.5, 1.0]), source="s")
    with pytest.raises(UserInputError, match="NaN or infinite labels"):
        infer_labels(np.array([np.nan, 1.0]), source="s")
    with pytest.raises(UserInputError, match="empty labels"):
        infer_labels(np.array(["a", ""], dtype=object), source="s")
    with pytest.raises(UserInputError, match="expected \\[rows\\]"):
        infer_labels(np.zeros((2, 2)), source="s")


def test_one_class_is_refused() -> None:
    check_classes([0, 1], source="t", column="label")
    with pytest.raises(UserInputError, match="'label' of t has 1 distinct.*at least two classes"):
        check_classes([7], source="t", column="label")
