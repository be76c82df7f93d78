"""Loading sources into tables on a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from automl_core.data import load as load_module
from automl_core.data.load import load_source
from automl_core.data.sources import read_source
from automl_core.errors import UserInputError


@pytest.fixture
def conn(db_url: str) -> Iterator[Any]:
    connection = psycopg2.connect(db_url)
    yield connection
    connection.close()


def _snapshot(conn: Any) -> dict[str, str]:
    """Every table in public with an md5 of its rows, and its comment."""
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        names = [r[0] for r in cur.fetchall()]
        out = {}
        for name in names:
            cur.execute(
                sql.SQL(
                    "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)), "
                    "obj_description(%s::regclass, 'pg_class') FROM {} t"
                ).format(sql.Identifier(name)),
                (sql.Identifier(name).as_string(conn),),
            )
            out[name] = repr(cur.fetchone())
    conn.rollback()
    return out


def _columns(conn: Any, table: str) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 ORDER BY attnum",
            (sql.Identifier(table).as_string(conn),),
        )
        return dict(cur.fetchall())


def _rows(conn: Any, table: str) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT id, features, label, split FROM {} ORDER BY id").format(
                sql.Identifier(table)
            )
        )
        return cur.fetchall()


def _comment(conn: Any, table: str) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT obj_description(%s::regclass, 'pg_class')",
            (sql.Identifier(table).as_string(conn),),
        )
        return json.loads(cur.fetchone()[0])


def test_load_digits(conn: Any) -> None:
    data = read_source("digits")
    result = load_source(conn, data, "digits")
    assert result.rows == {"train": 1797} and not result.replaced
    assert _columns(conn, "digits") == {
        "id": "bigint",
        "features": "real[]",
        "label": "integer",
        "split": "text",
    }
    rows = _rows(conn, "digits")
    assert [r[0] for r in rows] == list(range(1797))
    np.testing.assert_array_equal(np.array([r[1] for r in rows], dtype=np.float32), data.parts[0].x)
    assert [r[2] for r in rows] == data.parts[0].labels.tolist()
    assert {r[3] for r in rows} == {"train"}
    meta = _comment(conn, "digits")["automl_source"]
    assert meta == {
        "source": "digits",
        "feature_shape": [64],
        "label_type": "integer",
        "rows": {"train": 1797},
    }


def test_load_npz_with_test_split_shape_and_text_labels(conn: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3, 2, 2)).astype(np.float32)
    xt = rng.normal(size=(5, 3, 2, 2)).astype(np.float32)
    labels = np.array(["cat", "dog", "emu"])
    np.savez(
        tmp_path / "d.npz",
        x=x,
        y=labels[np.arange(30) % 3],
        x_test=xt,
        y_test=labels[np.arange(5) % 3],
    )
    load_source(conn, read_source(f"npz:{tmp_path / 'd.npz'}"), "pets")
    assert _columns(conn, "pets")["label"] == "text"
    rows = _rows(conn, "pets")
    assert [r[3] for r in rows] == ["train"] * 30 + ["test"] * 5
    np.testing.assert_array_equal(
        np.array([r[1] for r in rows[:30]], dtype=np.float32), x.reshape(30, 12)
    )
    np.testing.assert_array_equal(
        np.array([r[1] for r in rows[30:]], dtype=np.float32), xt.reshape(5, 12)
    )
    assert [r[2] for r in rows[:4]] == ["cat", "dog", "emu", "cat"]
    meta = _comment(conn, "pets")["automl_source"]
    assert meta["feature_shape"] == [3, 2, 2] and meta["rows"] == {"train": 30, "test": 5}


def test_bigint_labels(conn: Any, tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1)), y=np.array([2**40, 3]))
    load_source(conn, read_source(f"npz:{tmp_path / 'd.npz'}"), "big")
    assert _columns(conn, "big")["label"] == "bigint"
    assert [r[2] for r in _rows(conn, "big")] == [2**40, 3]


def test_existing_table_is_kept_without_replace(conn: Any) -> None:
    load_source(conn, read_source("digits"), "digits")
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match="'digits' already exists: pass --replace"):
        load_source(conn, read_source("digits"), "digits")
    assert _snapshot(conn) == before


def test_replace_swaps_the_table(conn: Any, tmp_path: Path) -> None:
    load_source(conn, read_source("digits"), "t")
    np.savez(tmp_path / "d.npz", x=np.ones((3, 2)), y=np.array([0, 1, 0]))
    result = load_source(conn, read_source(f"npz:{tmp_path / 'd.npz'}"), "t", replace=True)
    assert result.replaced
    assert len(_rows(conn, "t")) == 3
    assert _comment(conn, "t")["automl_source"]["feature_shape"] == [2]


def test_failed_replace_leaves_the_old_table(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    load_source(conn, read_source("digits"), "digits")
    before = _snapshot(conn)
    calls = {"n": 0}
    real = load_module.encode_source_rows

    def failing(*args: Any, **kwargs: Any) -> bytes:
        calls["n"] += 1
        if calls["n"] == 3:  # fail mid-stream, after rows were sent
            raise OSError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(load_module, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(load_module, "encode_source_rows", failing)
    with pytest.raises(OSError, match="disk on fire"):  # the producer's error, re-raised
        load_source(conn, read_source("digits"), "digits", replace=True)
    assert calls["n"] == 3
    assert _snapshot(conn) == before


def test_readers_of_the_old_table_are_not_blocked_while_the_new_one_loads(
    conn: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The DROP came first and held its exclusive lock for the whole load.
    load_source(conn, read_source("digits"), "digits")
    real = load_module.copy_in
    seen: list[int] = []

    def read_then_copy(*args: Any, **kwargs: Any) -> Any:
        reader = psycopg2.connect(db_url)
        try:
            with reader.cursor() as cur:
                cur.execute("SET lock_timeout = '2s'")
                cur.execute("SELECT count(*) FROM digits")  # the old rows, not a wait
                seen.append(cur.fetchone()[0])
        finally:
            reader.close()
        return real(*args, **kwargs)

    monkeypatch.setattr(load_module, "copy_in", read_then_copy)
    before = _snapshot(conn)
    load_source(conn, read_source("digits"), "digits", replace=True)
    assert seen == [1797]
    assert _snapshot(conn) == before  # the same rows again, and no staging table left


@pytest.mark.parametrize(
    "name", ["victim; DROP TABLE victim", "public.victim", 'v"ictim', "victim--"]
)
def test_injection_names_are_refused_before_anything_runs(conn: Any, name: str) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE victim (a int)")
        cur.execute("INSERT INTO victim VALUES (1)")
    conn.commit()
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match="not a plain SQL identifier"):
        load_source(conn, read_source("digits"), name, replace=True)
    assert _snapshot(conn) == before


def test_names_are_case_sensitive(conn: Any) -> None:
    load_source(conn, read_source("digits"), "digits")
    load_source(conn, read_source("digits"), "Digits")  # a different table, not "exists"
    assert len(_rows(conn, "Digits")) == 1797


def test_a_view_of_that_name_is_not_replaced(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE VIEW v AS SELECT 1 AS a")
    conn.commit()
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match="Cannot replace 'v'"):
        load_source(conn, read_source("digits"), "v", replace=True)
    assert _snapshot(conn) == before
