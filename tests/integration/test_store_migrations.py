"""automl_core.store.migrations against a real PostgreSQL database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg2 import sql

from automl_core.errors import UserInputError
from automl_core.store import LATEST_VERSION, connect, current_version, migrate
from automl_core.store.migrations import MIGRATIONS, Migration

# The keys of docs/reference.md, the contract other modules code against.
PRIMARY_KEYS = {
    "schema_migrations": ["version"],
    "datasets": ["name"],
    "experiments": ["id"],
    "trials": ["experiment_id", "trial_id"],
    "trial_epochs": ["experiment_id", "trial_id", "epoch"],
    "rungs": ["experiment_id", "bracket", "rung", "trial_id"],
    "checkpoints": ["experiment_id", "trial_id"],
    "best_checkpoints": ["experiment_id", "trial_id"],
    "mop_jobs": ["experiment_id", "trial_id", "epoch", "partition", "kind"],
    "training_requests": ["experiment_id", "trial_id", "target_epoch"],
    "engines": ["experiment_id"],
    "evaluations": ["experiment_id", "table_name"],
}


@pytest.fixture
def conn(db_url: str) -> Iterator[Any]:
    connection = connect(db_url)
    yield connection
    connection.close()


def query(conn: Any, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return list(cur.fetchall())


def test_migrate_creates_the_schema_once(conn: Any) -> None:
    assert current_version(conn) == 0
    assert migrate(conn) == list(range(1, LATEST_VERSION + 1))
    assert migrate(conn) == []
    assert current_version(conn) == LATEST_VERSION
    rows = query(conn, "SELECT version, name FROM automl.schema_migrations ORDER BY version")
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_tables_have_the_documented_keys(conn: Any) -> None:
    migrate(conn)
    rows = query(
        conn,
        """SELECT tc.table_name, kcu.column_name
           FROM information_schema.table_constraints tc
           JOIN information_schema.key_column_usage kcu
             ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
           WHERE tc.table_schema = 'automl' AND tc.constraint_type = 'PRIMARY KEY'
           ORDER BY tc.table_name, kcu.ordinal_position""",
    )
    keys: dict[str, list[str]] = {}
    for table, column in rows:
        keys.setdefault(table, []).append(column)
    assert keys == PRIMARY_KEYS


def test_column_types_follow_the_contract(conn: Any) -> None:
    migrate(conn)
    types = dict(
        ((t, c), d)
        for t, c, d in query(
            conn,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'automl'",
        )
    )
    for table in ("experiments", "trials", "trial_epochs", "checkpoints", "datasets"):
        stamp = {"trial_epochs": "recorded_at", "checkpoints": "updated_at"}.get(
            table, "created_at"
        )
        assert types[(table, stamp)] == "timestamp with time zone"
    assert types[("mop_jobs", "started_at")] == "double precision"
    assert types[("mop_jobs", "ended_at")] == "double precision"
    assert types[("experiments", "id")] == "bigint"
    assert types[("experiments", "spec")] == "jsonb"
    assert types[("trials", "config")] == "jsonb"
    assert types[("checkpoints", "state")] == "bytea"
    assert types[("best_checkpoints", "state")] == "bytea"
    assert types[("datasets", "feature_shape")] == "ARRAY"
    assert types[("datasets", "source_state")] == "jsonb"  # migration 9
    assert types[("datasets", "feature_names")] == "jsonb"  # migration 10
    unique = query(
        conn,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'automl' AND tablename = 'experiments'",
    )
    assert any("UNIQUE" in d and "(name)" in d for (d,) in unique)
    cascades = query(
        conn,
        """SELECT cl.relname FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid
           WHERE co.contype = 'f' AND co.confdeltype = 'c'
             AND co.confrelid = 'automl.experiments'::regclass ORDER BY 1""",
    )
    assert [r[0] for r in cascades] == [
        "best_checkpoints",
        "checkpoints",
        "engines",
        "evaluations",
        "mop_jobs",
        "rungs",
        "training_requests",
        "trial_epochs",
        "trials",
    ]


def slow_step(seconds: float) -> Callable[[Any, Any], None]:
    def apply(cur: Any, dialect: Any) -> None:
        cur.execute("SELECT pg_sleep(%s)", (seconds,))
        cur.execute("CREATE TABLE automl.marker (i int)")

    return apply


def test_concurrent_migrations_apply_each_version_once(db_url: str) -> None:
    migrations = (*MIGRATIONS, Migration(LATEST_VERSION + 1, "slow", slow_step(0.3)))
    results: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def worker() -> None:
        conn = connect(db_url)
        try:
            start.wait()
            results.append(migrate(conn, migrations))
        except BaseException as exc:  # reported below: a thread cannot raise into pytest
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    applied = sorted(v for r in results for v in r)
    assert applied == list(range(1, LATEST_VERSION + 2))
    assert len(results) == 3  # every process finished; which one applied what may vary


def test_a_failing_migration_keeps_the_earlier_versions(conn: Any) -> None:
    def broken(cur: Any, dialect: Any) -> None:
        cur.execute("CREATE TABLE automl.half_done (i int)")
        cur.execute("SELECT no_such_column FROM automl.experiments")

    with pytest.raises(Exception, match="no_such_column"):
        migrate(conn, (*MIGRATIONS, Migration(LATEST_VERSION + 1, "broken", broken)))
    conn.rollback()
    assert current_version(conn) == LATEST_VERSION
    assert query(conn, "SELECT to_regclass('automl.half_done')") == [(None,)]
    fixed = Migration(LATEST_VERSION + 1, "fixed", slow_step(0))
    assert migrate(conn, (*MIGRATIONS, fixed)) == [LATEST_VERSION + 1]


def test_a_newer_schema_is_refused(conn: Any) -> None:
    migrate(conn)
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("INSERT INTO {} (version, name) VALUES (%s, 'from the future')").format(
                sql.Identifier("automl", "schema_migrations")
            ),
            (LATEST_VERSION + 5,),
        )
    with pytest.raises(UserInputError, match=f"version {LATEST_VERSION + 5}.*Upgrade automl"):
        migrate(conn)


def test_migrate_works_on_an_autocommit_connection(conn: Any) -> None:
    conn.autocommit = True
    assert migrate(conn) == list(range(1, LATEST_VERSION + 1))
    assert conn.autocommit is True
    assert current_version(conn) == LATEST_VERSION


def test_data_sets_packed_before_version_10_read_without_feature_names(conn: Any) -> None:
    from automl_core.data.reader import dataset_info

    migrate(conn, MIGRATIONS[:9])
    with conn, conn.cursor() as cur:  # the row as version 9 wrote it
        cur.execute(
            "INSERT INTO automl.datasets (name, source, feature_shape, class_values, "
            "num_classes, partitions, n_train, n_valid, rows_per_partition, normalization, "
            "source_table, packed_table, source_state) VALUES ('old', 'csv:old.csv', '{2}', "
            """'[0, 1]', 2, 1, 8, 2, '{"train": [8], "valid": [2]}', """
            """'{"mean": [0, 1], "std": [1, 2]}', 'old', 'old_packed', NULL)"""
        )
    assert migrate(conn) == [m.version for m in MIGRATIONS[9:]]
    info = dataset_info(conn, "old", require_packed=False)
    assert info.feature_names is None and info.normalization["std"] == [1.0, 2.0]
