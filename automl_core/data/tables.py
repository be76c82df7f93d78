"""Catalog look-ups shared by loading, packing and reading: does a table exist, its
columns, the source metadata kept in its comment, Greenplum's segment count; and the
steps of ``--replace``: a staging name, a bounded-wait drop and the swap.

Tables are found by exact (case-sensitive) name among those visible on the connection's
``search_path``, which is also where an unqualified ``CREATE TABLE`` puts them.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from automl_core.data.validate import MAX_NAME_LEN
from automl_core.errors import UserInputError

SOURCE_META_KEY = "automl_source"


def find_table(conn: Any, name: str) -> int | None:
    """The oid of the visible table (or view) called exactly ``name``, or None."""
    with conn.cursor() as cur:
        # Not to_regclass(name): it would fold an unquoted "Digits" to "digits".
        cur.execute(
            "SELECT c.oid FROM pg_catalog.pg_class c "
            "WHERE c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND pg_catalog.pg_table_is_visible(c.oid)",
            (name,),
        )
        row = cur.fetchone()
    return int(row[0]) if row else None


def source_state(conn: Any, table: str) -> dict[str, int] | None:
    """The visible table ``table``'s oid and row count, ``{"oid": ..., "rows": ...}``; None
    when it does not exist. A table replaced (dropped and created again) has another oid;
    one that grew or shrank, another count. Rows updated in place go unnoticed."""
    oid = find_table(conn, table)
    if oid is None:
        return None
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        rows = int(cur.fetchone()[0])
    return {"oid": oid, "rows": rows}


def existing_table(conn: Any, name: str, *, what: str = "table") -> tuple[int, dict[str, str]]:
    """The oid and the columns (as :func:`table_columns`) of the table or view ``name``.

    Raises:
        UserInputError: naming ``what`` and ``name`` and how to load it, when there is
            none or when it is a table automl or the database owns (``owned_schema``).
    """
    oid = find_table(conn, name)
    if oid is None:
        raise UserInputError(
            f"The {what} {name!r} does not exist: load it first with `automl data load "
            f"SOURCE --table {name}`, or check the name (tables are found through the "
            "database's search_path: one in another schema needs that schema on it)."
        )
    schema = owned_schema(conn, oid)
    if schema is not None:
        raise UserInputError(
            f"The {what} {name!r} is {schema}.{name}, which {_owner(schema)} owns, not a "
            f"table of data: load your data with `automl data load SOURCE --table NAME` "
            "and give that NAME."
        )
    return oid, table_columns(conn, oid)


#: Schemas whose tables the product or the database itself own: never a user's table.
RESERVED_SCHEMAS = ("automl", "pg_catalog", "information_schema")


def owned_schema(conn: Any, oid: int) -> str | None:
    """The schema of table ``oid`` when the product or the database owns it (``automl``,
    the catalogs: a ``search_path`` may include one); None for a user's table."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n.nspname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
            (oid,),
        )
        row = cur.fetchone()
    schema = str(row[0]) if row else ""
    return schema if schema in RESERVED_SCHEMAS or schema.startswith("pg_") else None


def _owner(schema: str) -> str:
    return "automl" if schema == "automl" else "the database"


def check_replaceable(conn: Any, oid: int, name: str, *, option: str) -> None:
    """Raise UserInputError if table ``oid`` (found as ``name``) lives in a schema the
    product or the database owns (``owned_schema``): ``--replace`` never drops those; or
    in another schema than new tables go to (the first of ``search_path``), where its
    replacement would not be: it would move schema and lose its grants."""
    schema = owned_schema(conn, oid)
    if schema is not None:
        raise UserInputError(
            f"The value of {option} is {name!r}, but that is the table {schema}.{name}, "
            f"which {_owner(schema)} owns and which is never replaced: choose another {option}."
        )
    with conn.cursor() as cur:
        cur.execute(
            "SELECT n.nspname, pg_catalog.current_schema() FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
            (oid,),
        )
        found_in, creates_in = cur.fetchone()
    if found_in != creates_in:
        raise UserInputError(
            f"The value of {option} is {name!r}, which is the table {found_in}.{name} (found "
            f"through search_path), but new tables are created in {creates_in}: its "
            f"replacement would move there. Put {found_in} first in search_path, or choose "
            f"another {option}."
        )


#: How long ``--replace`` waits for other sessions' locks on the table it drops (seconds).
REPLACE_LOCK_TIMEOUT_S = 10.0
_SAVEPOINT = sql.Identifier("automl_drop_for_replace")


def drop_for_replace(cur: Any, table: str, *, option: str) -> None:
    """Drop table ``table`` for ``--replace``, inside the caller's transaction.

    The DROP waits at most ``REPLACE_LOCK_TIMEOUT_S`` for the locks of other sessions (a
    reader's open transaction) rather than forever: its exclusive lock request would
    also queue every later reader behind it. The lock it takes is held until the caller
    ends the transaction, so callers drop last, just before they commit.

    Raises UserInputError naming ``table`` and ``option`` when the wait runs out (naming
    the sessions that hold locks on it) and when the server refuses: a view (or other
    non-table) of that name, or objects (views, other tables' foreign keys) that depend
    on it; never CASCADE, which would drop the user's objects. The transaction is then
    aborted or unusable: the caller rolls it back, and nothing is lost.
    """
    cur.execute("SELECT pg_catalog.current_setting('lock_timeout')")
    previous = cur.fetchone()[0]
    wait_ms = f"{int(REPLACE_LOCK_TIMEOUT_S * 1000)}ms"
    cur.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (wait_ms,))
    # A savepoint keeps the transaction usable after a lock timeout, to ask who holds it.
    cur.execute(sql.SQL("SAVEPOINT {}").format(_SAVEPOINT))
    try:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    except psycopg2.errors.LockNotAvailable:
        cur.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(_SAVEPOINT))
        pids = ", ".join(str(p) for p in lock_holders(cur, table)) or "unknown"
        raise UserInputError(
            f"Cannot replace {table!r}: another session holds a lock on it (pid {pids}; see "
            f"pg_stat_activity) and did not release it within {REPLACE_LOCK_TIMEOUT_S:g} s. "
            f"Retry when it has finished (or end that session), or choose another {option}."
        ) from None
    except psycopg2.Error as exc:
        reason = (exc.diag.message_primary or exc.pgerror or str(exc)).strip().splitlines()[0]
        raise UserInputError(
            f"Cannot replace {table!r}: {reason}. Drop it yourself or choose another {option}."
        ) from None
    cur.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", (previous,))


def check_replace_target(conn: Any, table: str, *, replace: bool, option: str, what: str) -> bool:
    """Refuse now what the final :func:`swap_in` onto ``table`` would refuse; True if it exists.

    ``table`` missing: nothing to check. Existing: it must be replaceable
    (:func:`check_replaceable`), ``replace`` must be set, and a trial
    :func:`drop_for_replace` runs in the caller's transaction, so that a view depending
    on it or another session's lock is found before the long write, not after it. The
    caller rolls that transaction back (undoing the drop) whatever happens.

    Raises UserInputError naming ``table`` (as ``what``) and ``option``.
    """
    oid = find_table(conn, table)
    if oid is None:
        return False
    check_replaceable(conn, oid, table, option=option)
    if not replace:
        raise UserInputError(
            f"The {what} {table!r} already exists: pass --replace to overwrite it, or "
            f"choose another {option}."
        )
    with conn.cursor() as cur:
        drop_for_replace(cur, table, option=option)
    return True


def lock_holders(cur: Any, table: str) -> list[int]:
    """The pids of other sessions holding a granted lock on the visible table ``table``."""
    cur.execute(
        "SELECT DISTINCT l.pid FROM pg_catalog.pg_locks l "
        "JOIN pg_catalog.pg_class c ON c.oid = l.relation "
        "WHERE c.relname = %s AND pg_catalog.pg_table_is_visible(c.oid) AND l.granted "
        "AND l.pid <> pg_catalog.pg_backend_pid() ORDER BY 1",
        (table,),
    )
    return [int(r[0]) for r in cur.fetchall()]


def staging_name(conn: Any, table: str) -> str:
    """A free table name to build ``table``'s new content under before :func:`swap_in`.

    ``<table>`` cut to fit, then ``_new_`` and 8 random hex digits: within PostgreSQL's
    63-byte limit (a longer name would be truncated, possibly to ``table`` itself) and
    checked not to name a visible table or view.
    """
    while True:
        suffix = f"_new_{secrets.token_hex(4)}"
        name = table[: MAX_NAME_LEN - len(suffix)] + suffix
        if find_table(conn, name) is None:
            return name


def swap_in(cur: Any, staging: str, table: str, *, replace: bool, option: str) -> None:
    """Rename ``staging`` to ``table``, dropping the old ``table`` first when ``replace``.

    Meant as the last statements of the transaction that built ``staging``: the old
    table's exclusive lock is then held only from here to the commit. Raises
    UserInputError as :func:`drop_for_replace` does, and when ``table`` exists (it was
    created since it was checked) without ``replace``; the caller rolls back.
    """
    if replace:
        drop_for_replace(cur, table, option=option)
    try:
        cur.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(staging), sql.Identifier(table)
            )
        )
    except (psycopg2.errors.DuplicateTable, psycopg2.errors.UniqueViolation):
        # UniqueViolation: the other session's rename was in flight when this one ran.
        raise UserInputError(
            f"The table {table!r} was created meanwhile by another session: pass --replace "
            f"to overwrite it, or choose another {option}."
        ) from None


def table_columns(conn: Any, oid: int) -> dict[str, str]:
    """Column name -> SQL type (``format_type``, e.g. ``real[]``, ``integer``) of table ``oid``."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
            "FROM pg_catalog.pg_attribute a "
            "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (oid,),
        )
        return {str(n): str(t) for n, t in cur.fetchall()}


def write_source_meta(conn: Any, table: str, meta: dict[str, Any]) -> None:
    """Record ``meta`` (JSON) as the comment of source ``table``, under ``automl_source``.

    A comment travels with the table (dump/restore, rename) and needs no schema of its own.
    """
    text = json.dumps({SOURCE_META_KEY: meta}, sort_keys=True)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("COMMENT ON TABLE {} IS %s").format(sql.Identifier(table)), (text,))


def read_source_meta(conn: Any, oid: int) -> dict[str, Any] | None:
    """The ``automl_source`` metadata in the comment of table ``oid``; None if absent."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_catalog.obj_description(%s, 'pg_class')", (oid,))
        row = cur.fetchone()
    if not row or not row[0]:
        return None
    try:
        meta = json.loads(row[0])
    except ValueError:
        return None  # a comment a person wrote, not ours
    value = meta.get(SOURCE_META_KEY) if isinstance(meta, dict) else None
    return value if isinstance(value, dict) else None


SEGMENT_COUNT_SQL = (
    "SELECT count(*) FROM pg_catalog.gp_segment_configuration WHERE role = 'p' AND content >= 0"
)


def segment_count(conn: Any) -> int:
    """The number of primary segments of a Greenplum cluster (the default partition count)."""
    with conn.cursor() as cur:
        cur.execute(SEGMENT_COUNT_SQL)
        row = cur.fetchone()
    return int(row[0]) if row else 0
