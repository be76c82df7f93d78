"""``predict_table`` refuses bad input before writing, and a failure part-way writes
nothing. No model is trained here: every refusal happens before one would run (the
happy paths, with real models, are in test_export_s3.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from automl_core.cli import main
from automl_core.data.load import load_source
from automl_core.data.sources import SourceData, SplitPart
from automl_core.errors import UserInputError
from automl_core.export import CARD_FORMAT, ExportedModel
from automl_core.predict import predict_table
from automl_core.store import connect
from automl_core.store.migrations import migrate


@pytest.fixture
def conn(db_url: str) -> Iterator[Any]:
    connection = connect(db_url)
    migrate(connection)
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    data = SourceData("t", (4,), "integer", (SplitPart("train", x, np.arange(10) % 2),))
    load_source(connection, data, "src")
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE taken (id bigint, note text)")
        cur.execute("INSERT INTO taken VALUES (1, 'keep me')")
        cur.execute("CREATE TABLE not_source (id bigint, x real)")
    connection.commit()
    yield connection
    connection.close()


def fake_model(feature_shape: list[int]) -> ExportedModel:
    """A model whose card says it takes ``feature_shape``; its weights are never reached."""
    card = {
        "format": CARD_FORMAT,
        "data": {
            "dataset": "src",
            "feature_shape": feature_shape,
            "num_classes": 2,
            "class_values": [0, 1],
            "normalization": {"mean": 0.0, "std": 1.0},
        },
    }
    return ExportedModel(config={"architecture": "mlp"}, state=b"never loaded", card=card)


def tables(conn: Any) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = {r[0] for r in cur.fetchall()}
    conn.rollback()
    return names


def taken_rows(conn: Any) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute("SELECT id, note FROM taken")
        rows = cur.fetchall()
    conn.rollback()
    return rows


@pytest.mark.parametrize(
    ("source", "out", "message"),
    [
        ("src; DROP TABLE taken", "out", "source table name"),
        ('src"', "out", "source table name"),
        ("src", "out'); DROP TABLE taken; --", "output table name"),
        ("src", "public.out", "output table name"),
        ("src", "", "output table name"),
        ("src", "src", "is the source table"),
        ("missing", "out", "does not exist"),
        ("not_source", "out", "needs id and features"),
        ("src", "taken", "already exists"),
    ],
)
def test_refused_before_anything_is_written(conn: Any, source: str, out: str, message: str) -> None:
    before = tables(conn)
    with pytest.raises(UserInputError, match=message):
        predict_table(conn, source_table=source, out_table=out, model=fake_model([4]))
    assert tables(conn) == before
    assert taken_rows(conn) == [(1, "keep me")]


def test_bad_batch_size_and_unknown_experiment(conn: Any) -> None:
    with pytest.raises(UserInputError, match="batch size"):
        predict_table(conn, source_table="src", out_table="o", model=fake_model([4]), batch_size=0)
    with pytest.raises(UserInputError, match="no experiment named 'ghost'"):
        predict_table(conn, source_table="src", out_table="o", model="ghost")
    assert "o" not in tables(conn)


def test_a_failure_part_way_leaves_the_old_table(conn: Any) -> None:
    # The model takes 3 features, the table has 4: the first batch fails after the new
    # output table was created, and the rollback keeps the old one and drops the new.
    with pytest.raises(UserInputError, match="does not match dataset"):
        predict_table(
            conn, source_table="src", out_table="taken", model=fake_model([3]), replace=True
        )
    assert taken_rows(conn) == [(1, "keep me")]


def test_cli_needs_exactly_one_model_source(conn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["predict", "--table", "src", "--out-table", "o"]
    assert main(base) == 2
    assert "either an EXPERIMENT" in capsys.readouterr().err
    assert main(["predict", "exp", "--model", "/tmp/x", "--table", "src", "--out-table", "o"]) == 2
    assert main(["predict", "exp", "--table", "src;", "--out-table", "o"]) == 2
    assert "not a plain SQL identifier" in capsys.readouterr().err
    assert "o" not in tables(conn)


def _uniform(*args: Any, num_classes: int, **kwargs: Any) -> np.ndarray:
    """A stand-in for ``predict_proba``: probability 1/classes for every class."""
    return np.full((np.asarray(args[2]).shape[0], num_classes), 1.0 / num_classes, np.float32)


@pytest.mark.parametrize("out", ["fresh", "taken"])
def test_nonfinite_features_are_refused_and_nothing_is_written(
    conn: Any, monkeypatch: pytest.MonkeyPatch, out: str
) -> None:
    # Updated rows move to the end of the heap: rows 7 and 8 come in the third and the
    # fourth batch of 3, after two batches were scored and copied; the rollback takes
    # those back, and the count covers the rows after the first bad batch too.
    import automl_core.training.engine as engine

    monkeypatch.setattr(engine, "predict_proba", _uniform)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE nanrows AS SELECT * FROM src")
        cur.execute("UPDATE nanrows SET features[2] = 'NaN' WHERE id = 7")
        cur.execute("UPDATE nanrows SET features[1] = '-Infinity' WHERE id = 8")
    conn.commit()
    before = tables(conn)
    with pytest.raises(UserInputError, match=r"2 row\(s\) with NaN or infinite .* id 7\)"):
        predict_table(
            conn,
            source_table="nanrows",
            out_table=out,
            model=fake_model([4]),
            batch_size=3,
            replace=True,
        )
    assert tables(conn) == before
    assert taken_rows(conn) == [(1, "keep me")]
    # The same rows made finite are scored: the refusal was about the values only.
    with conn.cursor() as cur:
        cur.execute("UPDATE nanrows SET features = '{0,1,2,3}' WHERE id IN (7, 8)")
    conn.commit()
    assert (
        predict_table(
            conn, source_table="nanrows", out_table=out, model=fake_model([4]), replace=True
        )
        == 10
    )


@pytest.mark.parametrize(
    ("statement", "out"),
    [
        ("CREATE VIEW a_view AS SELECT 1::bigint AS id", "a_view"),
        ("CREATE VIEW on_taken AS SELECT note FROM taken", "taken"),
    ],
)
def test_replace_refuses_a_view_or_a_table_others_depend_on(
    conn: Any, statement: str, out: str
) -> None:
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.commit()
    with pytest.raises(UserInputError, match=rf"Cannot replace '{out}': .*--out-table"):
        predict_table(conn, source_table="src", out_table=out, model=fake_model([4]), replace=True)
    assert conn.status == psycopg2.extensions.STATUS_READY  # the transaction was ended
    assert taken_rows(conn) == [(1, "keep me")]
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_views WHERE viewname IN ('a_view', 'on_taken')")
        assert cur.fetchone()[0] == 1
    conn.rollback()


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        # Before: ValueError / TypeError tracebacks from int() and float() on the rows.
        ("SELECT 'r' || id AS id, features FROM src", "column 'id' of 'bad' has type text"),
        ("SELECT id::numeric AS id, features FROM src", "column 'id' of 'bad' has type numeric"),
        (
            "SELECT id, ARRAY['a', 'b']::text[] AS features FROM src",
            r"column 'features' of 'bad' has type text\[\], but must be an array of numbers",
        ),
        (
            "SELECT NULLIF(id, 3) AS id, features FROM src",
            r"'bad' has a row whose id is NULL \(column 'id'\).*WHERE id IS NULL",
        ),
        (
            "SELECT id, CASE WHEN id = 4 THEN NULL ELSE features END AS features FROM src",
            r"Row id 4 of 'bad' has NULL features \(column 'features'\)",
        ),
        (
            "SELECT id, CASE WHEN id = 4 THEN features[1:3] ELSE features END AS features FROM src",
            "Row id 4 of 'bad' has 3 features, but row id 0 has 4",
        ),
    ],
)
@pytest.mark.parametrize("out", ["fresh", "taken"])
def test_malformed_ids_and_features_are_refused_and_nothing_is_written(
    conn: Any, monkeypatch: pytest.MonkeyPatch, statement: str, message: str, out: str
) -> None:
    import automl_core.training.engine as engine

    monkeypatch.setattr(engine, "predict_proba", _uniform)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE bad AS {statement} ORDER BY 1")
    conn.commit()
    before = tables(conn)
    with pytest.raises(UserInputError, match=message):
        predict_table(conn, source_table="bad", out_table=out, model=fake_model([4]), replace=True)
    assert tables(conn) == before
    assert taken_rows(conn) == [(1, "keep me")]


def test_a_wrong_feature_width_names_the_table_once(conn: Any) -> None:
    # Before: "Rows of shape (10, 4) do not match ...: pass [n, 3] or [n, 3]".
    with pytest.raises(UserInputError) as caught:
        predict_table(conn, source_table="src", out_table="o", model=fake_model([3]))
    message = str(caught.value)
    assert "The features of the table 'src' have shape (4,) per row" in message
    assert "3 values per row" in message and "[n, 3]" not in message
    assert "o" not in tables(conn)


def _holder(db_url: str) -> Any:
    """Another session, which waits at most 2 s for a lock of its own."""
    holder = connect(db_url)
    with holder.cursor() as cur:
        cur.execute("SET lock_timeout = '2s'")
    holder.commit()
    return holder


def test_replace_locks_the_old_table_only_at_the_swap_and_not_forever(
    conn: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the DROP came first and held its exclusive lock for the whole scoring (the
    # reader below timed out), and it waited forever for a reader's lock.
    import automl_core.data.tables as tables_module
    import automl_core.training.engine as engine

    holder = _holder(db_url)

    def read_while_scoring(*args: Any, **kwargs: Any) -> np.ndarray:
        with holder.cursor() as cur:  # a reader, left in its transaction: it keeps the lock
            cur.execute("SELECT count(*) FROM taken")
            assert cur.fetchone()[0] == 1
        return _uniform(*args, **kwargs)

    monkeypatch.setattr(engine, "predict_proba", read_while_scoring)
    monkeypatch.setattr(tables_module, "REPLACE_LOCK_TIMEOUT_S", 0.5)
    before = tables(conn)
    try:
        pid = holder.get_backend_pid()
        with pytest.raises(UserInputError, match=rf"holds a lock on it \(pid {pid};.* Retry"):
            predict_table(
                conn, source_table="src", out_table="taken", model=fake_model([4]), replace=True
            )
        assert tables(conn) == before  # no staging table is left behind
        assert taken_rows(conn) == [(1, "keep me")]
        holder.rollback()
        monkeypatch.setattr(engine, "predict_proba", _uniform)
        n = predict_table(
            conn, source_table="src", out_table="taken", model=fake_model([4]), replace=True
        )
    finally:
        holder.close()
    assert n == 10 and tables(conn) == before
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), min(probability) FROM taken")
        assert cur.fetchone() == (10, 0.5)
    conn.rollback()


def test_a_lock_held_before_predict_starts_is_reported_before_scoring(
    conn: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import automl_core.data.tables as tables_module

    monkeypatch.setattr(tables_module, "REPLACE_LOCK_TIMEOUT_S", 0.5)
    holder = _holder(db_url)
    with holder.cursor() as cur:
        cur.execute("SELECT count(*) FROM taken")
    # The old code waited for the lock: let it go after a while, so that it fails, not hangs.
    release = threading.Timer(5.0, holder.rollback)
    release.start()
    try:
        # The fake model's weights are never loaded: the refusal comes before scoring.
        with pytest.raises(UserInputError, match="another session holds a lock on it"):
            predict_table(
                conn, source_table="src", out_table="taken", model=fake_model([4]), replace=True
            )
        assert conn.status == psycopg2.extensions.STATUS_READY
    finally:
        release.join()
        holder.close()
    assert taken_rows(conn) == [(1, "keep me")]


def test_an_output_name_of_63_characters_is_replaced_in_full(
    conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The staging name is cut to fit 63 bytes: PostgreSQL would truncate a longer one,
    # possibly to the output name itself.
    import automl_core.training.engine as engine

    monkeypatch.setattr(engine, "predict_proba", _uniform)
    out = "p" * 63
    for _ in range(2):
        assert (
            predict_table(
                conn, source_table="src", out_table=out, model=fake_model([4]), replace=True
            )
            == 10
        )
    assert out in tables(conn) and len(tables(conn)) == 4  # src, taken, not_source, out


def test_an_upper_case_output_name_is_kept_and_the_quoting_is_said(
    conn: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Names are exact, as for source tables; psql folds an unquoted name to lower case.
    import automl_core.training.engine as engine

    monkeypatch.setattr(engine, "predict_proba", _uniform)
    predict_table(conn, source_table="src", out_table="Scored_x", model=fake_model([4]))
    assert "Scored_x" in tables(conn)
    assert 'quote it in SQL, as "Scored_x" (unquoted, it reads as scored_x)' in caplog.text


def test_two_writers_racing_to_one_new_table_get_a_clear_error(db_url: str) -> None:
    # The second rename waited for the first to commit, then failed on pg_class's unique
    # index with a raw UniqueViolation (a review's two concurrent predicts).
    import threading
    import time

    from automl_core.data.tables import staging_name, swap_in

    first, second = psycopg2.connect(db_url), psycopg2.connect(db_url)
    outcome: list[BaseException | None] = []

    def swap(conn: Any) -> None:
        try:
            with conn.cursor() as cur:
                staging = staging_name(conn, "raced")
                cur.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(staging)))
                swap_in(cur, staging, "raced", replace=False, option="--out-table")
            conn.commit()
            outcome.append(None)
        except BaseException as exc:
            conn.rollback()
            outcome.append(exc)

    try:
        with first.cursor() as cur:
            staging = staging_name(first, "raced")
            cur.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(staging)))
            swap_in(cur, staging, "raced", replace=False, option="--out-table")
        racer = threading.Thread(target=swap, args=(second,))
        racer.start()
        time.sleep(1.0)  # the racer's rename now waits on the first's uncommitted one
        first.commit()
        racer.join(timeout=30)
        assert not racer.is_alive()
    finally:
        first.close()
        second.close()
    (error,) = outcome
    assert isinstance(error, UserInputError), error
    assert "'raced' was created meanwhile by another session" in str(error)
