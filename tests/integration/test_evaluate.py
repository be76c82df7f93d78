"""``automl evaluate``: held-out accuracy, loss and confusion matrix of the model handed
over, saved in ``automl.evaluations`` and shown in the report; bad input writes nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from automl_core.cli import main
from automl_core.data.reader import DatasetInfo
from automl_core.errors import UserInputError
from automl_core.evaluate import _class_index, evaluate_table, not_held_out
from automl_core.experiment import SearchRequest, run_search
from automl_core.predict import predict_table
from automl_core.report.html import write_report
from automl_core.store import repository as repo
from automl_core.store.connection import connect

SPACE = {"architecture": "mlp", "hidden": 64, "optimizer": "adam", "lr": 0.01, "batch_size": 32}
NAME = "evaluate-me"


@pytest.fixture(scope="module")
def trained(digits_url: str) -> str:
    request = SearchRequest(
        dataset="digits", space=SPACE, method="random", name=NAME, n=1, epochs=2, batch_size=1
    )
    run_search(request, progress=False, db_url=digits_url)
    return digits_url


@pytest.fixture
def conn(trained: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AUTOML_DB_URL", trained)  # for the `automl` command
    connection = connect(trained)
    yield connection
    connection.close()


def saved(conn: Any) -> list[repo.EvaluationRow]:
    return repo.evaluations(conn, repo.get_experiment(conn, NAME).id)


@pytest.mark.timeout(300)
def test_figures_agree_with_predict_and_are_saved_and_reported(conn: Any, tmp_path: Path) -> None:
    result = evaluate_table(conn, NAME, "digits", batch_size=500)
    confusion = np.array(result.confusion)
    assert result.rows == confusion.sum() == 1797
    assert confusion.shape == (10, 10)
    assert result.accuracy == pytest.approx(np.trace(confusion) / 1797)
    # The rows include the training and validation rows, so it is near their accuracy.
    board = {r.epoch: r for r in repo.epochs(conn, repo.get_experiment(conn, NAME).id)}
    assert result.epoch in board
    assert result.accuracy == pytest.approx(board[result.epoch].valid_accuracy, abs=0.08)
    assert 0.8 < result.accuracy <= 1.0 and result.loss > 0
    # The same model as predict: its predictions give the same accuracy.
    predict_table(conn, source_table="digits", out_table="digits_scored", model=NAME, replace=True)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT avg((s.predicted = d.label)::int) FROM digits_scored s JOIN digits d USING (id)"
        )
        assert float(cur.fetchone()[0]) == pytest.approx(result.accuracy)
    conn.rollback()
    assert saved(conn) == [result]
    again = evaluate_table(conn, NAME, "digits")
    assert saved(conn) == [again]  # the latest per table, not a second row
    page = write_report(conn, NAME, tmp_path / "report").read_text()
    assert "Held-out evaluation" in page and f"accuracy <b>{result.accuracy:.4f}</b>" in page


def test_cli_prints_figures_and_json(conn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", NAME, "--table", "digits"]) == 0
    out = capsys.readouterr().out
    assert "1797 rows" in out and "confusion matrix" in out
    assert main(["evaluate", NAME, "--table", "digits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"] == 1797 and len(data["confusion"]) == 10


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("no_such_table", "does not exist"),
        ("bad name;", "table name"),
        ("unlabelled", "needs id, features and label"),
        ("strange_labels", "the label 42, which the model was not trained on"),
        # Before: ValueError and TypeError tracebacks from int() and float().
        ("text_ids", "The column 'id' of 'text_ids' has type text, but must be an integer"),
        ("text_features", "The column 'features' of 'text_features' has type text[]"),
        ("null_ids", "The table 'null_ids' has a row whose id is NULL (column 'id')"),
        ("null_features", "Row id 3 of 'null_features' has NULL features"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_saved(
    conn: Any, table: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "DROP TABLE IF EXISTS unlabelled, strange_labels, text_ids, text_features, "
            "null_ids, null_features"
        )
        for name, select in (
            ("text_ids", "'r' || id AS id, features"),
            ("text_features", "id, ARRAY['a']::text[] AS features"),
            ("null_ids", "NULLIF(id, 3) AS id, features"),
            ("null_features", "id, CASE WHEN id = 3 THEN NULL ELSE features END AS features"),
        ):
            cur.execute(f"CREATE TABLE {name} AS SELECT {select}, label FROM digits WHERE id < 9")
        cur.execute("CREATE TABLE unlabelled (id bigint, features real[])")
        cur.execute("CREATE TABLE strange_labels (id bigint, features real[], label bigint)")
        cur.execute("INSERT INTO strange_labels SELECT id, features, 42 FROM digits LIMIT 3")
    conn.commit()
    before = saved(conn)
    assert main(["evaluate", NAME, "--table", table]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert saved(conn) == before


def test_split_keeps_that_split_only(conn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = evaluate_table(conn, NAME, "digits", split="train")  # digits: every row is train
    assert result.table_name == "digits:train" and result.rows == 1797
    assert main(["evaluate", NAME, "--table", "digits", "--split", "test"]) == 2
    assert "'digits:test' has no rows" in capsys.readouterr().err
    assert "digits:test" not in {r.table_name for r in saved(conn)}


def test_nonfinite_features_are_refused_by_evaluate_and_predict(
    conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: predict wrote probability NaN, evaluate saved loss nan and --json crashed.
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS evaluate_nanrows, evaluate_nan_scored")
        cur.execute("CREATE TABLE evaluate_nanrows AS SELECT * FROM digits WHERE id < 50")
        cur.execute("UPDATE evaluate_nanrows SET features[1] = 'NaN' WHERE id = 12")
        cur.execute("UPDATE evaluate_nanrows SET features[64] = 'Infinity' WHERE id = 30")
    conn.commit()
    before = saved(conn)
    expected = "'evaluate_nanrows' has 2 row(s) with NaN or infinite features (first: id 12)"
    for command in (
        ["evaluate", NAME, "--table", "evaluate_nanrows"],
        ["evaluate", NAME, "--table", "evaluate_nanrows", "--json"],
        ["predict", NAME, "--table", "evaluate_nanrows", "--out-table", "evaluate_nan_scored"],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
    assert saved(conn) == before
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('evaluate_nan_scored')")
        assert cur.fetchone()[0] is None
    conn.rollback()


def not_held_out_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "automl_core.evaluate" and r.levelno == logging.WARNING
    ]


def test_the_experiments_own_table_is_scored_with_a_warning(
    conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="automl_core.evaluate")
    result = evaluate_table(conn, NAME, "digits")
    assert result.rows == 1797  # scored all the same
    (warning,) = not_held_out_warnings(caplog)
    assert warning.startswith(
        f"The table 'digits' is the source table of experiment {NAME!r}: the model was "
        "trained and chosen on its rows, so this accuracy is not a held-out estimate."
    )
    caplog.clear()
    evaluate_table(conn, NAME, "digits", split="train")
    (warning,) = not_held_out_warnings(caplog)
    assert "trained and chosen on its 'train' rows" in warning
    # Another table is not the data the search used (as far as its name tells).
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS digits_other")
        cur.execute("CREATE TABLE digits_other AS SELECT * FROM digits WHERE id < 100")
    conn.commit()
    caplog.clear()
    assert evaluate_table(conn, NAME, "digits_other").rows == 100
    assert not_held_out_warnings(caplog) == []


DATA = DatasetInfo(
    name="events",
    feature_shape=(4,),
    num_classes=2,
    class_values=[0, 1],
    partitions=2,
    n_train=800,
    n_valid=200,
    normalization={"mean": 0.0, "std": 1.0},
    source_table="events",
)


def test_a_test_split_is_held_out_unless_it_was_the_validation_set() -> None:
    def note(table: str, split: str | None, scored: int, train_rows: int | None) -> str | None:
        return not_held_out("exp", table, split, DATA, scored=scored, train_rows=train_rows)

    assert note("events_test", None, 200, None) is None
    assert "trained and chosen on its rows" in (note("events", None, 1000, None) or "")
    # Prepared without --validation-fraction: the 200 test rows were the validation set.
    validated = note("events", "test", 200, 800) or ""
    assert validated.startswith("The 'test' rows of 'events' were the validation set of")
    # Prepared with a fraction: 1000 train rows, 800 of them trained on; the test rows
    # were never seen.
    assert note("events", "test", 250, 1000) is None


def test_labels_match_classes_recorded_as_their_sql_text() -> None:
    # `automl data prepare` records a boolean (or numeric) label column's classes as
    # ::text; evaluate reads the column's values. Before: "has the label False, which the
    # model was not trained on (its classes: 'false', 'true')".
    text_classes = {"false": 0, "true": 1}
    assert [_class_index(v, text_classes, "t") for v in (False, True)] == [0, 1]
    assert _class_index(True, {0: 0, 1: 1}, "t") == 1  # integer classes as before
    assert _class_index(3.0, {2: 0, 3: 1}, "t") == 1
    with pytest.raises(UserInputError, match="has the label 'maybe', which the model"):
        _class_index("maybe", text_classes, "t")
