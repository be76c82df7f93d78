"""Scoring a CSV file from the command line: `automl data load csv:new.csv --no-label`,
then `automl predict`, which takes the table's features by name.

Before, a CSV without a label column was refused (the only route was SQL by hand), and
`automl predict` read a table's `features` by position although the table's comment and
the model both knew the columns' names: a file whose columns came in another order was
scored with the wrong features, silently.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automl_core.cli import main
from automl_core.data.tables import find_table, read_source_meta
from automl_core.errors import UserInputError
from automl_core.evaluate import evaluate_table
from automl_core.export import best_model
from automl_core.predict import predict_table
from tests.integration.test_export_s3 import build_trained_experiment, read_table
from tests.integration.test_results_predict import tables

FEATURES = ["a", "b", "c", "d"]


@pytest.fixture
def trained(conn: Any, tmp_path: Path) -> pd.DataFrame:
    """Experiment ``exp``, trained on ``cols`` loaded from ``cols.csv`` (columns a, b, c, d
    in their own units, and label); that file's rows."""
    build_trained_experiment(conn, "exp", "cols", "integer", csv_dir=tmp_path)
    return pd.read_csv(tmp_path / "cols.csv")


def _load(tmp_path: Path, frame: pd.DataFrame, table: str, *options: str) -> int:
    path = tmp_path / f"{table}.csv"
    frame.to_csv(path, index=False)
    return main(["data", "load", f"csv:{path}", "--table", table, *options])


def test_an_unlabeled_csv_is_loaded_and_scored_as_the_model_scores_it_in_memory(
    conn: Any, trained: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = trained[FEATURES]
    assert _load(tmp_path, new, "new", "--no-label") == 0
    out = capsys.readouterr().out
    assert "created table new: 90 rows to score, features (4,), no labels" in out
    assert "automl predict EXPERIMENT --table new --out-table OUT" in out
    with conn.cursor() as cur:
        cur.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'new'::regclass AND attnum > 0 "
            "ORDER BY attnum"
        )
        assert [r[0] for r in cur.fetchall()] == ["id", "features"]
    meta = read_source_meta(conn, find_table(conn, "new"))
    conn.rollback()
    assert meta is not None and meta["feature_names"] == FEATURES
    assert meta["label_type"] is None and meta["rows"] == {"score": 90}
    assert main(["predict", "exp", "--table", "new", "--out-table", "new_scored"]) == 0
    model = best_model(conn, "exp")
    got = read_table(conn, "new_scored")
    assert [r[0] for r in got] == list(range(90))  # ids in file order
    assert [r[1] for r in got] == model.predict(new)
    want = model.predict_proba(new).max(axis=1)
    assert np.allclose([r[2] for r in got], want, rtol=1e-6, atol=1e-7)


def test_columns_in_another_order_are_taken_by_name(
    conn: Any,
    trained: pd.DataFrame,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = best_model(conn, "exp")
    want = model.predict(trained[FEATURES])
    assert _load(tmp_path, trained[["d", "b", "a", "c"]], "shuffled", "--no-label") == 0
    with caplog.at_level(logging.INFO, logger="automl_core.predict"):
        assert main(["predict", "exp", "--table", "shuffled", "--out-table", "scored"]) == 0
    assert "the features of shuffled come in another order than the model's" in caplog.text
    assert [r[1] for r in read_table(conn, "scored")] == want
    # By position, as before, those rows score otherwise: the test tells the two apart.
    assert model.predict(trained[["d", "b", "a", "c"]].to_numpy()) != want
    # A labelled file in another order: `automl evaluate` reads it by name too.
    assert _load(tmp_path, trained[["label", "c", "a", "d", "b"]], "held_out") == 0
    in_order = evaluate_table(conn, "exp", "cols").accuracy
    assert evaluate_table(conn, "exp", "held_out").accuracy == pytest.approx(in_order)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["a", "b", "d"], r"The table 'new' has no feature 'c' \(1 of the model's 4 features"),
        (["e", "a", "b", "c", "d"], r"The table 'new' has the feature\(s\) 'e', which the model"),
        # The training file itself, loaded with --no-label: its label became a feature.
        (["a", "b", "c", "d", "label"], r"has the feature\(s\) 'label', .* loaded with --no-label"),
    ],
)
def test_a_missing_or_extra_column_is_refused_and_nothing_is_written(
    conn: Any,
    trained: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    columns: list[str],
    message: str,
) -> None:
    frame = trained.assign(e=1.0)[columns]
    assert _load(tmp_path, frame, "new", "--no-label") == 0
    before = tables(conn)
    with pytest.raises(UserInputError, match=message) as caught:
        predict_table(conn, source_table="new", out_table="new_scored", model="exp")
    assert "data set 'cols', whose features are the columns 'a', 'b', 'c', 'd'" in str(caught.value)
    assert "automl data load csv:PATH --table new --replace" in str(caught.value)
    assert tables(conn) == before  # no output table, not even a staging one
    capsys.readouterr()
    assert main(["predict", "exp", "--table", "new", "--out-table", "new_scored"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert tables(conn) == before


def test_an_unlabeled_table_is_neither_prepared_nor_evaluated(
    conn: Any, trained: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _load(tmp_path, trained[FEATURES], "new", "--no-label") == 0
    capsys.readouterr()
    before = tables(conn)
    assert main(["data", "prepare", "new", "--partitions", "2"]) == 2
    err = capsys.readouterr().err
    assert "The table 'new' was loaded with --no-label: it holds rows to score" in err
    assert "automl predict EXPERIMENT --table new --out-table OUT" in err
    assert main(["evaluate", "exp", "--table", "new"]) == 2
    err = capsys.readouterr().err
    assert "needs id, features and label" in err and "loaded with --no-label" in err
    assert "automl predict" in err
    assert tables(conn) == before
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM automl.datasets WHERE name = 'new'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM automl.evaluations")
        assert cur.fetchone()[0] == 0
    conn.rollback()


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("digits", ["--no-label"], "--no-label applies to csv: sources only, but the source is"),
        (
            "csv:{path}",
            ["--no-label", "--label-column", "kind"],
            "--no-label says the file has no label column, but --label-column names one",
        ),
        # Without --no-label, a file without its label column is refused as before; the
        # message now says what to do with rows to score.
        (
            "csv:{path}",
            [],
            "has no label column 'label' (columns: ['a', 'b']); pass --label-column NAME, "
            "or --no-label for rows without labels, to score with `automl predict`",
        ),
    ],
)
def test_no_label_misuse_is_refused_before_anything_is_written(
    conn: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    source: str,
    options: list[str],
    message: str,
) -> None:
    path = tmp_path / "new.csv"
    path.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    argv = ["data", "load", source.format(path=path), "--table", "new", *options]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert "new" not in tables(conn)
