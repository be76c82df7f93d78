"""A CSV's feature column names: read in file order by the loader, checked as a card's
``data.feature_names``, and used to pick a DataFrame's columns by name when a model
scores it (pure: no database, no torch).

Before, the names were thrown away at load, so a DataFrame whose columns came in another
order was scored with the wrong features, silently.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl_core.data.feature_names import check_feature_names, frame_columns
from automl_core.data.reader import DatasetInfo
from automl_core.data.sources import read_source
from automl_core.errors import UserInputError

NAMES = ("income", "rate", "age")


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "d.csv"
    path.write_text(text, encoding="utf-8")
    return f"csv:{path}"


def test_a_csv_keeps_its_feature_column_names_in_file_order(tmp_path: Path) -> None:
    # The label in the middle is left out; names are stripped, as the header is read.
    data = read_source(_csv(tmp_path, "\ufeffincome, rate ,label,age\n1,2,0,3\n4,5,1,6\n"))
    assert data.feature_names == NAMES
    assert data.feature_shape == (3,)
    assert read_source("digits").feature_names is None  # other sources have no names


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("a,b,a,label", r"share the name\(s\) \['a'\]"),
        ("a,,b,label", r"feature column\(s\) \[2\] .* have no name"),
    ],
)
def test_names_that_do_not_tell_the_columns_apart_are_not_kept(
    tmp_path: Path, header: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        data = read_source(_csv(tmp_path, f"{header}\n1,2,3,0\n4,5,6,1\n"))
    assert data.feature_names is None and data.feature_shape == (3,)
    assert re.search(why, caplog.text) and "by position" in caplog.text


@pytest.mark.parametrize("header", [",a,b,label", "Unnamed: 0,a,b,label", "a,Unnamed: 3,b,label"])
def test_a_pandas_index_column_is_refused_naming_the_fix(tmp_path: Path, header: str) -> None:
    # DataFrame.to_csv() without index=False: its row numbers were trained on as a feature.
    with pytest.raises(UserInputError, match=r"as pandas writes its index .* index=False"):
        read_source(_csv(tmp_path, f"{header}\n0,2,3,0\n1,5,6,1\n"))


def test_card_names_must_be_one_distinct_string_per_feature() -> None:
    assert check_feature_names(None, 3, what="data.feature_names") is None
    assert check_feature_names(list(NAMES), 3, what="data.feature_names") == NAMES
    for bad in ("income,rate,age", ["a", "b"], ["a", "b", "a"], ["a", "b", 3], {"a": 1}):
        with pytest.raises(ValueError, match=r"^data\.feature_names is .* list of 3 distinct"):
            check_feature_names(bad, 3, what="data.feature_names")
    long = [f"column_{i}" for i in range(500)]
    with pytest.raises(ValueError) as caught:  # a wide card's names are not all printed
        check_feature_names(long, 499, what="data.feature_names")
    assert len(str(caught.value)) < 300


def test_old_records_without_names_still_read() -> None:
    info = DatasetInfo(
        name="t", feature_shape=(3,), num_classes=2, class_values=[0, 1], partitions=1,
        n_train=4, n_valid=2, rows_per_partition={"train": [4], "valid": [2]},
        normalization={"mean": 0.0, "std": 1.0}, feature_names=NAMES,
    )  # fmt: skip
    record = info.record()
    assert record["feature_names"] == list(NAMES)
    assert DatasetInfo.from_record(record) == info
    old = {k: v for k, v in record.items() if k not in ("feature_names", "source_state")}
    assert DatasetInfo.from_record(old).feature_names is None  # a row before schema 10
    with pytest.raises(UserInputError, match=r"feature_names of data set 't' is .*prepare t"):
        DatasetInfo.from_record({**record, "feature_names": ["a", "b"]})
    # an experiment's copy: packing the data set again would not mend it
    with pytest.raises(UserInputError, match=r"copy that experiment 'hb' keeps .* backup"):
        DatasetInfo.from_record({**record, "feature_names": ["a", "b"]}, kept_by="hb")


FRAME = pd.DataFrame({"income": [1.0, 4.0], "rate": [2.0, 5.0], "age": [3.0, 6.0]})


def _picked(x: object) -> list[list[float]]:
    return np.asarray(frame_columns(x, NAMES, dataset="money")).tolist()


def test_a_dataframe_is_read_by_name_in_training_order() -> None:
    want = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert _picked(FRAME) == want
    shuffled = FRAME.assign(id=[10, 11], label=["a", "b"])[["label", "age", "id", "income", "rate"]]
    assert _picked(shuffled) == want  # the id and the label are left out
    assert _picked(FRAME.rename(columns={"rate": " rate "})) == want  # as a header is read


def test_a_dataframe_missing_a_feature_column_is_refused_naming_it() -> None:
    with pytest.raises(UserInputError) as caught:
        frame_columns(FRAME.drop(columns=["rate"]), NAMES, dataset="money")
    message = str(caught.value)
    assert "no column 'rate' (1 of the model's 3 features)" in message
    assert "data set 'money', whose features are the columns 'income', 'rate', 'age'" in message
    wide = tuple(f"c{i}" for i in range(40))
    with pytest.raises(UserInputError, match=r"no column 'c0', .* 'c4', \.\.\. \(40 in all\)"):
        frame_columns(pd.DataFrame({"x": [1]}), wide, dataset="wide")
    twice = pd.concat([FRAME, FRAME[["age"]]], axis=1)
    with pytest.raises(UserInputError, match=r"several columns called 'age'"):
        frame_columns(twice, NAMES, dataset="money")


def test_without_names_or_string_columns_a_dataframe_is_read_by_position() -> None:
    bare = pd.DataFrame(np.array([[3.0, 2.0, 1.0]]))  # a RangeIndex: positional
    assert frame_columns(bare, NAMES, dataset="money") is bare
    assert frame_columns(FRAME, None, dataset="money") is FRAME  # no names: positional
    rows = np.ones((2, 3))
    assert frame_columns(rows, NAMES, dataset="money") is rows  # arrays as they are
    series = pd.Series([np.ones(3)])
    assert frame_columns(series, NAMES, dataset="money") is series


def test_one_row_as_a_series_is_read_by_name() -> None:
    # df.iloc[0] of a shuffled frame (label and all) was read by position, silently wrong.
    shuffled = FRAME.assign(label=["a", "b"])[["label", "age", "income", "rate"]]
    assert np.asarray(frame_columns(shuffled.iloc[1], NAMES, dataset="money")).tolist() == [
        4.0, 5.0, 6.0,
    ]  # fmt: skip
    with pytest.raises(UserInputError, match=r"The Series \(one row.*no column 'rate'"):
        frame_columns(FRAME.iloc[0].drop("rate"), NAMES, dataset="money")


def test_a_csv_without_labels_keeps_every_column_as_a_named_feature(tmp_path: Path) -> None:
    # `automl data load --no-label`: the file was refused for lacking a label column.
    data = read_source(_csv(tmp_path, "rate,income,age\n2,1,3\n5,4,6\n"), labeled=False)
    assert data.feature_names == ("rate", "income", "age") and data.label_type is None
    assert [(p.split, p.labels) for p in data.parts] == [("score", None)]
    assert data.parts[0].x.tolist() == [[2.0, 1.0, 3.0], [5.0, 4.0, 6.0]]
    with pytest.raises(UserInputError, match=r"--no-label applies to csv: sources only"):
        read_source("digits", labeled=False)
    with pytest.raises(UserInputError, match=r"semicolon-separated"):
        read_source(_csv(tmp_path, "a;b\n1;2\n"), labeled=False)


def test_a_tables_features_are_matched_to_the_models_by_name() -> None:
    # One matcher for DataFrames and tables: a table's array is put in the model's order;
    # unlike a DataFrame's, its other entries are refused, as the array is read whole.
    from automl_core.data.feature_names import match_names, table_order

    match = match_names(["age", None, "income", "x", "age"], NAMES)
    assert match.positions == (2, 0) and match.missing == ("rate",)
    assert match.repeated == ("age",) and match.extra == ("x",)
    assert table_order(NAMES, NAMES, table="t", dataset="money") is None  # already in order
    assert table_order(("age", "income", "rate"), NAMES, table="t", dataset="money") == [1, 2, 0]
    with pytest.raises(UserInputError) as caught:
        table_order(("income", "age"), NAMES, table="t", dataset="money")
    message = str(caught.value)
    assert "The table 't' has no feature 'rate' (1 of the model's 3 features" in message
    assert "loaded with: 'income', 'age'" in message and "data set 'money'" in message
    assert "automl data load csv:PATH --table t --replace" in message
    with pytest.raises(UserInputError, match=r"has the feature\(s\) 'label', which the model"):
        table_order((*NAMES, "label"), NAMES, table="t", dataset="money")
