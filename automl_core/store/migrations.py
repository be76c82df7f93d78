"""Versioned schema migrations for the ``automl`` schema.

Each migration is a ``Migration(version, name, apply)`` in ``MIGRATIONS`` (the versions
themselves are in ``automl_core.store.migration_steps``). ``migrate(conn)`` applies the
pending ones in order, each in its own transaction together with its row in
``automl.schema_migrations``, so a failure leaves the database at the last complete version.

Concurrency: every step holds a transaction-level advisory lock and re-reads the applied
versions under it, so two processes migrating at once apply each version exactly once
(the second waits, then finds nothing to do).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg2 import sql

from automl_core.errors import UserInputError
from automl_core.store.dialect import Dialect
from automl_core.store.migration_steps import MIGRATIONS, SCHEMA, Migration

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "SCHEMA",
    "Migration",
    "current_version",
    "migrate",
    "migrated_connection",
    "migrated_connection_if_any",
]

# An arbitrary constant ("automl" in ASCII): advisory locks are per database, and only
# migrate() takes this one.
_LOCK_KEY = 0x6175746F6D6C


def _t(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


def _check_registry(migrations: tuple[Migration, ...]) -> int:
    """The latest version; raises RuntimeError unless versions run 1, 2, ..., N."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration versions must be 1..N in order, got {versions}")
    return versions[-1]


LATEST_VERSION = _check_registry(MIGRATIONS)


@contextmanager
def _transaction(conn: Any) -> Iterator[Any]:
    """A cursor in one transaction: committed on success, rolled back on error.

    Works whatever the connection's autocommit setting (restored afterwards): the
    advisory lock below is held only while a transaction is open.
    """
    autocommit = conn.autocommit
    if autocommit:
        conn.autocommit = False
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        if autocommit:
            conn.autocommit = True


def _bootstrap(cur: Any, dialect: Dialect) -> None:
    """Create ``automl`` and ``automl.schema_migrations`` if missing (under the lock)."""
    cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_migrations",))
    row = cur.fetchone()
    if row is not None and row[0] is not None:
        return
    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    cur.execute(
        sql.SQL(
            """CREATE TABLE {t} (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            ){dist}"""
        ).format(t=_t("schema_migrations"), dist=dialect.distributed_by("version"))
    )


def _applied(cur: Any) -> set[int]:
    cur.execute(sql.SQL("SELECT version FROM {}").format(_t("schema_migrations")))
    return {int(r[0]) for r in cur.fetchall()}


def _refuse_newer(applied: set[int], latest: int) -> None:
    newer = sorted(v for v in applied if v > latest)
    if newer:
        raise UserInputError(
            f"the database schema is at version {max(newer)}, newer than this version of "
            f"automl knows (up to {latest}). Upgrade automl, or point AUTOML_DB_URL "
            f"at another database."
        )


def migrate(conn: Any, migrations: tuple[Migration, ...] | None = None) -> list[int]:
    """Apply every pending migration; return the versions applied by this call, in order.

    Idempotent: a second call returns ``[]``. Each version commits separately; the call
    ends any transaction open on ``conn`` first. ``migrations`` defaults to
    ``MIGRATIONS`` (tests pass their own list).

    Raises:
        UserInputError: the database holds a schema version newer than this code knows.
        psycopg2.Error: a statement failed; that version is rolled back, earlier ones stay.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    latest = _check_registry(migrations)
    dialect = Dialect.detect(conn)
    conn.commit()
    applied_now: list[int] = []
    while True:
        with _transaction(conn) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            _bootstrap(cur, dialect)
            applied = _applied(cur)
            _refuse_newer(applied, latest)
            pending = [m for m in migrations if m.version not in applied]
            if not pending:
                return applied_now
            step = pending[0]
            step.apply(cur, dialect)
            cur.execute(
                sql.SQL("INSERT INTO {} (version, name) VALUES (%s, %s)").format(
                    _t("schema_migrations")
                ),
                (step.version, step.name),
            )
        applied_now.append(step.version)


def current_version(conn: Any) -> int:
    """The highest applied schema version; 0 when the schema was never created.

    Ends the connection's current transaction (a read, committed).
    """
    with _transaction(conn) as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_migrations",))
        row = cur.fetchone()
        if row is None or row[0] is None:
            return 0
        cur.execute(
            sql.SQL("SELECT COALESCE(max(version), 0) FROM {}").format(_t("schema_migrations"))
        )
        result = cur.fetchone()
        return int(result[0]) if result else 0


@contextmanager
def migrated_connection(url: str | None = None) -> Iterator[Any]:
    """A connection to ``url`` (default: ``database_url()``) with the automl schema
    created or brought up to date; closed on exit.

    Raises UserInputError as :func:`automl_core.store.connection.connect` and
    :func:`migrate` do.
    """
    from automl_core.store.connection import connect

    conn = connect(url)
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


@contextmanager
def migrated_connection_if_any(url: str | None = None) -> Iterator[Any | None]:
    """As :func:`migrated_connection` where the automl schema exists, else None, creating
    nothing: for the checks that run before anything is written (a database without
    the schema holds no experiments). An existing schema is brought up to date, as
    every step does.
    """
    from automl_core.store.connection import connect

    conn = connect(url)
    try:
        if current_version(conn) == 0:
            yield None
        else:
            migrate(conn)
            yield conn
    finally:
        conn.close()
