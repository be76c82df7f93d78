"""Reads and writes of the ``datasets`` table (one row per prepared dataset).

Unlike the rest of the repository these run in the caller's transaction and do not
commit: ``prepare`` packs a dataset's table and records it in one transaction, so that
a failure leaves neither. Reads leave the transaction state as they found it
(``read_cursor``), and check that the table exists first: a failed SELECT would abort
the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from automl_core.store.migrations import SCHEMA
from automl_core.store.repository._common import _t, read_cursor

#: Columns of a dataset row, in order (``automl_core.data.reader.DatasetInfo``'s fields).
DATASET_COLUMNS = (
    "name",
    "feature_shape",
    "num_classes",
    "class_values",
    "partitions",
    "n_train",
    "n_valid",
    "rows_per_partition",
    "normalization",
    "source",
    "source_table",
    "packed_table",
    "source_state",
    "feature_names",
)
_JSON_COLUMNS = frozenset(
    {"class_values", "rows_per_partition", "normalization", "source_state", "feature_names"}
)


def datasets_table_exists(conn: Any) -> bool:
    """Whether the ``automl.datasets`` table exists (the schema is migrated)."""
    with read_cursor(conn) as cur:
        return _exists(cur)


def _exists(cur: Any) -> bool:
    # The table is named as a value: naming it in a statement fails when it is absent.
    cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.datasets",))
    row = cur.fetchone()
    return row is not None and row[0] is not None


def dataset_record(conn: Any, name: str) -> dict[str, Any] | None:
    """The row of dataset ``name`` (``DATASET_COLUMNS`` -> value); None when it has none
    or the table does not exist yet."""
    with read_cursor(conn) as cur:
        if not _exists(cur):
            return None
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE name = %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in DATASET_COLUMNS), _t("datasets")
            ),
            (name,),
        )
        row = cur.fetchone()
    return None if row is None else dict(zip(DATASET_COLUMNS, row, strict=True))


def lock_dataset(conn: Any, name: str) -> None:
    """Wait for, then hold until the caller's transaction ends, the lock of dataset ``name``
    (two prepares of one dataset would race on CREATE TABLE)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"automl.prepare.{name}",))


def dataset_owns_table(conn: Any, name: str, packed_table: str) -> bool:
    """Whether the row of dataset ``name`` says ``packed_table`` is its packed table."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT 1 FROM {} WHERE name = %s AND packed_table = %s").format(
                _t("datasets")
            ),
            (name, packed_table),
        )
        return cur.fetchone() is not None


def upsert_dataset(conn: Any, values: Mapping[str, Any]) -> None:
    """Insert or replace the row ``values`` (every ``DATASET_COLUMNS`` key; JSON columns as
    plain values, None as SQL NULL); ``created_at`` becomes now(). Does not commit.

    Raises:
        ValueError: ``values`` has a key that is not a column, or lacks one.
    """
    if set(values) != set(DATASET_COLUMNS):
        raise ValueError(
            f"The dataset row has columns {sorted(values)}, but must have {sorted(DATASET_COLUMNS)}."
        )
    cols = list(DATASET_COLUMNS)
    params = {
        c: Json(values[c]) if c in _JSON_COLUMNS and values[c] is not None else values[c]
        for c in cols
    }
    query = sql.SQL(
        "INSERT INTO {table} ({cols}) VALUES ({vals}) ON CONFLICT (name) DO UPDATE "
        "SET {updates}, created_at = now()"
    ).format(
        table=_t("datasets"),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        vals=sql.SQL(", ").join(sql.Placeholder(c) for c in cols),
        updates=sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
            for c in cols
            if c != "name"
        ),
    )
    with conn.cursor() as cur:
        cur.execute(query, params)
