"""Bad source tables and ``automl data load`` arguments refused before anything is
written, on a real PostgreSQL: NULL and duplicate ids, train rows of one class, labels
COPY cannot store, table names that can never be prepared, a misplaced --label-column."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from automl_core.cli import main
from automl_core.data.prepare import prepare_dataset
from automl_core.data.tables import find_table
from automl_core.data.validate import MAX_NAME_LEN, PACKED_SUFFIX
from automl_core.errors import UserInputError
from tests.integration.test_bad_input import refused


def _table(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.commit()


# --- E: the source table, before packing ---------------------------------------------------

_ROWS = "CREATE TABLE src AS SELECT g::bigint AS id, ARRAY[g, 1]::real[] AS features, "


def test_a_null_id_is_refused_naming_the_table_and_count(conn: Any) -> None:
    _table(
        conn,
        _ROWS + "g % 2 AS label FROM generate_series(1, 20) g",
        "UPDATE src SET id = NULL WHERE id IN (3, 4)",
    )
    with pytest.raises(UserInputError, match=r"2 row\(s\) of 'src' have a NULL id: .*row_number"):
        prepare_dataset(conn, "src", partitions=2)
    assert find_table(conn, "src_packed") is None


def test_duplicate_ids_are_refused_naming_how_many(conn: Any) -> None:
    # Packing orders rows by id: with duplicates it would follow the storage order.
    _table(
        conn,
        _ROWS + "g % 2 AS label FROM generate_series(1, 30) g",
        "UPDATE src SET id = 5 WHERE id IN (6, 7)",
        "UPDATE src SET id = 9 WHERE id = 10",
    )
    with pytest.raises(
        UserInputError, match=r"2 id value\(s\) of 'src' are shared by several rows \(ids 5, 9\)"
    ):
        prepare_dataset(conn, "src", partitions=2)
    assert find_table(conn, "src_packed") is None


def test_train_rows_of_one_class_are_refused(conn: Any) -> None:
    # Two classes in the table, but the test rows hold all of class 1.
    _table(
        conn,
        _ROWS + "g % 2 AS label, CASE WHEN g % 2 = 0 THEN 'train' ELSE 'test' END AS split "
        "FROM generate_series(1, 20) g",
    )
    with pytest.raises(
        UserInputError, match=r"'train' rows of 'src' have 1 distinct 'label' value\(s\) \(\[0\]\)"
    ):
        prepare_dataset(conn, "src", partitions=2)
    assert find_table(conn, "src_packed") is None


def test_test_only_classes_are_named_in_a_warning(
    conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _table(
        conn,
        _ROWS + "CASE WHEN g > 16 THEN 7 ELSE g % 2 END AS label, "
        "CASE WHEN g > 12 THEN 'test' ELSE 'train' END AS split FROM generate_series(1, 20) g",
    )
    with caplog.at_level(logging.WARNING, logger="automl_core.data.scan"):
        info = prepare_dataset(conn, "src", partitions=2)
    assert info.class_values == [0, 1, 7]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "'test' rows of src have 1 classes that no 'train' row has: [7]" in w for w in warnings
    )


# --- C1 and F: `automl data load` ----------------------------------------------------------


def test_a_nul_in_a_csv_label_is_refused_before_copy(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "nul.csv"
    path.write_text("a,label\n1,cat\n2,d\x00g\n3,cat\n", encoding="utf-8")
    message = refused(capsys, db_url, "data", "load", f"csv:{path}", "--table", "t")
    assert "line 3: the label 'd\\x00g' contains a NUL character" in message


def test_a_table_whose_packed_name_is_too_long_is_refused_at_load(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    longest = MAX_NAME_LEN - len(PACKED_SUFFIX)
    message = refused(capsys, db_url, "data", "load", "digits", "--table", "t" * (longest + 1))
    assert "--table" in message and "never prepared" in message
    assert f"at most {longest} characters" in message
    assert main(["data", "load", "digits", "--table", "t" * longest]) == 0


def test_label_column_is_refused_for_a_source_other_than_csv(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("data", "load", "digits", "--table", "d", "--label-column", "foo")
    message = refused(capsys, db_url, *argv)
    assert "--label-column applies to csv: sources only" in message and "'digits'" in message
