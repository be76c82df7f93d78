"""Loading a source into a table: ``<table>(id bigint, features real[], label, split text)``,
or ``<table>(id bigint, features real[])`` for rows to score without labels (a CSV file
loaded with ``--no-label``: what ``automl predict`` reads, and nothing that ``prepare``
or ``evaluate`` could mistake for labels).

Rows go in with one binary ``COPY FROM STDIN`` fed by a generator, in chunks of about
8 MB, so loading is bound by the server, not by Python. The feature shape and label type
(and a CSV's feature column names) go into the table's comment (see
:mod:`automl_core.data.tables`), where ``prepare`` finds them (and ``predict`` the names);
rows without labels are recorded with ``label_type`` null, which ``prepare`` refuses by
that name. Replacing a table drops
and recreates it inside the same transaction as the COPY: if anything fails, the old
table is still there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg2 import sql

from automl_core.data.pgcopy import HEADER, TRAILER, copy_in, encode_source_rows
from automl_core.data.sources import SourceData
from automl_core.data.tables import (
    check_replace_target,
    staging_name,
    swap_in,
    write_source_meta,
)
from automl_core.data.validate import validate_output_table
from automl_core.store.dialect import Dialect

log = logging.getLogger(__name__)

CHUNK_BYTES = 8 << 20
COPY_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class LoadResult:
    """What ``load_source`` wrote."""

    table: str
    rows: dict[str, int]  # split -> row count
    feature_shape: tuple[int, ...]
    label_type: str | None  # None: rows to score, no label column
    replaced: bool
    seconds: float

    @property
    def n_rows(self) -> int:
        return sum(self.rows.values())


def load_source(conn: Any, data: SourceData, table: str, *, replace: bool = False) -> LoadResult:
    """Write ``data`` into a new table ``table`` and commit.

    Ids are 0..n-1 in source order (train rows first). Data without labels
    (``data.label_type`` None) makes a table of ``id`` and ``features`` only. Raises
    UserInputError when ``table`` is not a plain identifier, names a table the product
    owns (``*_packed``, the ``automl`` schema), or exists and ``replace`` is false, or
    cannot be dropped (a view depends on it; another session holds a lock on it for more
    than ``tables.REPLACE_LOCK_TIMEOUT_S``); the database is then untouched. The rows go
    into a staging table, renamed to ``table`` at the end of the transaction (after
    dropping the old one), so readers of the old table wait only for the swap. Any
    failure during the write rolls the transaction back (the table, or the one it was
    replacing, is as it was) and re-raises.
    """
    validate_output_table(table, option="--table")
    start = time.perf_counter()
    try:
        exists = check_replace_target(conn, table, replace=replace, option="--table", what="table")
        conn.rollback()  # end the catalog reads and undo the trial drop
        dialect = Dialect.detect(conn)
        with conn.cursor() as cur:
            staging = staging_name(conn, table)
            ident = sql.Identifier(staging)
            if data.label_type is None:
                columns = sql.SQL("id bigint NOT NULL, features real[] NOT NULL")
                names = sql.SQL("id, features")
            else:
                columns = sql.SQL(
                    "id bigint NOT NULL, features real[] NOT NULL, label {} NOT NULL, "
                    "split text NOT NULL"
                ).format(sql.SQL(_label_sql_type(data.label_type)))
                names = sql.SQL("id, features, label, split")
            cur.execute(
                sql.SQL("CREATE TABLE {} ({}){}").format(
                    ident, columns, dialect.distributed_by("id")
                )
            )
            copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(ident, names)
            copy_in(cur, copy.as_string(conn), _copy_stream(data), COPY_READ_SIZE)
            # The old table goes last: readers wait only from here to the commit.
            swap_in(cur, staging, table, replace=replace, option="--table")
        meta: dict[str, Any] = {
            "source": data.source,
            "feature_shape": list(data.feature_shape),
            "label_type": data.label_type,
            "rows": _split_counts(data),
        }
        if data.feature_names is not None:  # a CSV's columns: prepare, exports, predict
            meta["feature_names"] = list(data.feature_names)
        write_source_meta(conn, table, meta)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    seconds = time.perf_counter() - start
    log.info("loaded %d rows into %s in %.2f s", data.n_rows, table, seconds)
    return LoadResult(
        table=table,
        rows=_split_counts(data),
        feature_shape=data.feature_shape,
        label_type=data.label_type,
        replaced=exists,
        seconds=seconds,
    )


def _label_sql_type(label_type: str) -> str:
    # A closed set: the type name is never taken from user input.
    types = {"integer": "integer", "bigint": "bigint", "text": "text"}
    return types[label_type]


def _split_counts(data: SourceData) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in data.parts:
        counts[part.split] = counts.get(part.split, 0) + int(part.x.shape[0])
    return counts


def _copy_stream(data: SourceData) -> Iterator[bytes]:
    """The binary COPY stream for ``data``: header, tuples in ~8 MB chunks, trailer."""
    yield HEADER
    next_id = 0
    for part in data.parts:
        n = part.x.shape[0]
        flat = part.x.reshape(n, -1)
        rows = max(1, CHUNK_BYTES // max(flat.shape[1] * 8, 1))
        for a in range(0, n, rows):
            b = min(a + rows, n)
            ids = np.arange(next_id + a, next_id + b, dtype=np.int64)
            labels = None if part.labels is None else part.labels[a:b]
            yield encode_source_rows(ids, flat[a:b], labels, data.label_type, part.split)
        next_id += n
    yield TRAILER
