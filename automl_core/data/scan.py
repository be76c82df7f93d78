"""Inspecting and reading a source table for packing.

:func:`inspect_source` checks the table with catalog look-ups and one aggregate query,
so every problem with it (missing, wrong columns, empty, ragged, NULLs, one class,
duplicate ids: a second query names them) is reported before any row is read or
written. :func:`read_rows` then streams the rows with one binary ``COPY ... TO STDOUT``
into a preallocated float32 array.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg2
import psycopg2.errors
from psycopg2 import sql

from automl_core.data.feature_names import listed_names
from automl_core.data.pgcopy import FixedRowSink, decode_source_dtype
from automl_core.data.tables import existing_table, read_source_meta
from automl_core.data.validate import (
    INT_TYPES,
    check_classes,
    check_row_columns,
    nonfinite_rows,
    raise_nonfinite,
    validate_table_name,
)
from automl_core.errors import UserInputError

log = logging.getLogger(__name__)

_FIXED_COLUMNS = ("id", "features", "split")
_SHOW_IDS = 5  # duplicated ids named in the message


@dataclass(frozen=True)
class SourceSummary:
    """What :func:`inspect_source` learned about a source table."""

    table: str
    label_column: str
    has_split: bool
    feature_shape: tuple[int, ...]
    class_values: list[Any]  # sorted; ints for an integer label column, else str
    n_train: int
    n_test: int
    source: str  # the loader's source spec, or the table name for a foreign table
    oid: int | None = None  # the table's, as found when inspected
    # A CSV's feature column names, from the loader's comment; None for other tables.
    feature_names: tuple[str, ...] | None = None

    @property
    def state(self) -> dict[str, int] | None:
        """The table's oid and row count (``data.tables.source_state``), from the one
        aggregate scan: every row is a ``train`` or a ``test`` row, or it was refused."""
        return None if self.oid is None else {"oid": self.oid, "rows": self.n_train + self.n_test}

    @property
    def n_features(self) -> int:
        return int(np.prod(self.feature_shape))


@dataclass(frozen=True)
class SourceRows:
    """Rows read from a source table; position ``i`` of every array is the same row."""

    ids: np.ndarray  # int64
    is_test: np.ndarray  # bool
    labels: np.ndarray  # int64 index into class_values
    x: np.ndarray  # float32 [n, n_features], raw (not normalised)


def inspect_source(conn: Any, table: str, *, label_column: str = "label") -> SourceSummary:
    """Check source ``table`` and summarise it, reading no rows.

    The table needs columns ``id`` (integer), ``features`` (a numeric array) and
    ``label_column``; ``split`` (``train``/``test``) is optional (all rows are ``train``
    without it). The loader's comment gives the feature shape and a CSV's feature names,
    unless it no longer fits the rows (then the shape is flat and there are no names).
    Raises UserInputError naming the table and the fix for every problem (a table loaded
    without labels, ``--no-label``, says so), and for a ``label_column`` that is one of
    those fixed columns.
    """
    validate_table_name(table)
    validate_table_name(label_column, what="label column")
    if label_column in _FIXED_COLUMNS:
        # Labelling by id or features makes one class per row; by split, classes that are
        # the train/test assignment. Either would silently replace a good packing.
        raise UserInputError(
            f"The value of --label-column is {label_column!r}, but the columns "
            f"{', '.join(_FIXED_COLUMNS)} of a source table are never the label: pass "
            "--label-column NAME of the column that holds the classes (default: label)."
        )
    oid, columns = existing_table(conn, table)
    meta = read_source_meta(conn, oid) or {}
    if label_column not in columns and "label_type" in meta and meta["label_type"] is None:
        raise UserInputError(
            f"The table {table!r} was loaded with --no-label: it holds rows to score, "
            "without the labels a model is trained on, so it cannot be prepared. Load and "
            "prepare the labelled training file instead (`automl data load csv:PATH --table "
            f"NAME`, then `automl data prepare NAME`), and score {table!r} with `automl "
            f"predict EXPERIMENT --table {table} --out-table OUT`."
        )
    _check_columns(table, columns, label_column)
    has_split = "split" in columns
    stats = _aggregate(conn, table, label_column, has_split)
    total, n_train, n_test, bad_split, min_len, max_len, bad_features, null_labels = stats[:8]
    null_ids, distinct_ids = stats[8:]
    if total == 0:
        raise UserInputError(f"The table {table!r} is empty: load rows into it first.")
    _check_ids(conn, table, total, null_ids, distinct_ids)
    if bad_split:
        raise UserInputError(
            f"{bad_split} row(s) of {table!r} have a split other than 'train' or 'test': fix "
            "the split column."
        )
    if bad_features:
        raise UserInputError(
            f"{bad_features} row(s) of {table!r} have NULL, empty or multi-dimensional "
            "features, or NULL values inside them: every row needs a flat array of numbers."
        )
    if min_len != max_len:
        raise UserInputError(
            f"The features of {table!r} are ragged: rows have between {min_len} and {max_len} "
            "values; every row needs the same number of features."
        )
    if null_labels:
        raise UserInputError(
            f"{null_labels} row(s) of {table!r} have a NULL {label_column!r}: every row needs "
            "a label."
        )
    if n_train == 0:
        raise UserInputError(f"The table {table!r} has no 'train' rows.")
    class_values, train_classes = _class_values(
        conn, table, label_column, columns[label_column], has_split
    )
    check_classes(class_values, source=f"table {table!r}", column=label_column)
    _check_train_classes(table, label_column, class_values, train_classes)
    shape = tuple(int(s) for s in meta.get("feature_shape") or (max_len,))
    stale = int(np.prod(shape)) != max_len
    if stale:
        shape = (int(max_len),)  # the comment is stale (rows were changed): trust the rows
    names = None if stale else listed_names(meta, int(max_len))  # a CSV's columns
    return SourceSummary(
        table=table,
        label_column=label_column,
        has_split=has_split,
        feature_shape=shape,
        class_values=class_values,
        n_train=int(n_train),
        n_test=int(n_test),
        source=str(meta.get("source") or table),
        oid=int(oid),
        feature_names=names,
    )


def _check_columns(table: str, columns: dict[str, str], label_column: str) -> None:
    check_row_columns(table, columns)
    if label_column not in columns:
        raise UserInputError(
            f"The table {table!r} has no column {label_column!r} (columns: {list(columns)}); "
            "a source table needs id, features and a label column: pass --label-column NAME."
        )
    if "split" in columns and columns["split"] not in ("text", "character varying"):
        raise UserInputError(
            f"The column 'split' of {table!r} has type {columns['split']}: it must be text."
        )


def _check_ids(conn: Any, table: str, total: int, null_ids: int, distinct_ids: int) -> None:
    """Every row needs its own id: packing orders rows by id (a NULL id cannot be read,
    and with duplicates the order, and so the packing, depends on the storage order)."""
    fix = (
        "load the data with `automl data load`, or number the rows afresh, e.g. "
        f"CREATE TABLE new AS SELECT row_number() OVER () AS id, ... FROM {table}"
    )
    if null_ids:
        raise UserInputError(f"{null_ids} row(s) of {table!r} have a NULL id: {fix}.")
    if distinct_ids != total:
        # The window count is taken before LIMIT: all duplicated ids, the lowest few named.
        query = sql.SQL(
            "SELECT id, count(*) OVER () FROM (SELECT id FROM {} GROUP BY id "
            "HAVING count(*) > 1) d ORDER BY id LIMIT {}"
        ).format(sql.Identifier(table), sql.Literal(_SHOW_IDS))
        with conn.cursor() as cur:
            cur.execute(query)
            dup = cur.fetchall()
        n_dup = int(dup[0][1]) if dup else 0
        shown = ", ".join(str(r[0]) for r in dup) + (", ..." if n_dup > len(dup) else "")
        raise UserInputError(
            f"{n_dup} id value(s) of {table!r} are shared by several rows (ids {shown}), "
            f"but ids must be unique: {fix}."
        )


def _check_train_classes(
    table: str, column: str, class_values: list[Any], train_classes: list[Any]
) -> None:
    """Refuse train rows of fewer than two classes; warn about classes only test rows have."""
    if len(train_classes) < 2:
        raise UserInputError(
            f"The 'train' rows of {table!r} have {len(train_classes)} distinct {column!r} "
            f"value(s) ({train_classes!r}); the other classes are only in 'test' rows. A "
            "model needs at least two classes to train on: move rows of other classes into "
            "the 'train' split."
        )
    trained = set(train_classes)
    test_only = [c for c in class_values if c not in trained]
    if test_only:
        log.warning(
            "the 'test' rows of %s have %s classes that no 'train' row has: %r; a model "
            "cannot learn them, and when the test split is the validation set they are "
            "always counted wrong",
            table,
            len(test_only),
            test_only,
        )


def _aggregate(conn: Any, table: str, label_column: str, has_split: bool) -> tuple[int, ...]:
    split = sql.Identifier("split") if has_split else sql.Literal("train")
    query = sql.SQL(
        """SELECT count(*),
            count(*) FILTER (WHERE {split} = 'train'),
            count(*) FILTER (WHERE {split} = 'test'),
            count(*) FILTER (WHERE {split} IS NULL OR {split} NOT IN ('train', 'test')),
            min(cardinality(features)),
            max(cardinality(features)),
            count(*) FILTER (WHERE CASE WHEN array_ndims(features) = 1
                THEN array_position(features, NULL) IS NOT NULL ELSE true END),
            count(*) FILTER (WHERE {label} IS NULL),
            count(*) FILTER (WHERE id IS NULL),
            count(DISTINCT id)
        FROM {table}"""
    ).format(split=split, label=sql.Identifier(label_column), table=sql.Identifier(table))
    with conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
    return tuple(int(v) if v is not None else 0 for v in row)


def _class_values(
    conn: Any, table: str, label_column: str, label_type: str, has_split: bool
) -> tuple[list[Any], list[Any]]:
    """Sorted distinct labels of all rows and of the train rows: ints for an integer
    column, else their text (sorted by code point, as Python sorts str, independent of
    the database collation)."""
    is_int = label_type in INT_TYPES
    expr = (
        sql.Identifier(label_column)
        if is_int
        else sql.SQL("{}::text").format(sql.Identifier(label_column))
    )
    split = sql.Identifier("split") if has_split else sql.Literal("train")
    query = sql.SQL(
        "SELECT {}, bool_or({} = 'train') FROM {} WHERE {} IS NOT NULL GROUP BY 1"
    ).format(expr, split, sql.Identifier(table), sql.Identifier(label_column))
    with conn.cursor() as cur:
        cur.execute(query)
        rows = [(int(v) if is_int else str(v), bool(train)) for v, train in cur.fetchall()]
    return sorted(v for v, _ in rows), sorted(v for v, train in rows if train)


def read_rows(conn: Any, summary: SourceSummary, *, include_test: bool) -> SourceRows:
    """Read the ``train`` rows (and ``test`` rows when ``include_test``) of a checked source.

    Labels come back as indices into ``summary.class_values``, computed by the server so
    that every row has the same width in the binary stream. Raises UserInputError when a
    feature is NaN or infinite (naming the first such row's id).
    """
    n = summary.n_train + (summary.n_test if include_test else 0)
    d = summary.n_features
    dtype, expect = decode_source_dtype(d)
    out = SourceRows(
        ids=np.empty(n, dtype=np.int64),
        is_test=np.empty(n, dtype=bool),
        labels=np.empty(n, dtype=np.int64),
        x=np.empty((n, d), dtype=np.float32),
    )
    filled = 0
    bad_ids: list[np.ndarray] = []

    def take(rows: np.ndarray) -> None:
        nonlocal filled
        k = rows.shape[0]
        if filled + k > n:
            raise RuntimeError(f"{summary.table} changed while it was read: run prepare again")
        out.x[filled : filled + k] = rows["el"]["v"]
        out.ids[filled : filled + k] = rows["id"]
        out.is_test[filled : filled + k] = rows["split"] == 1
        out.labels[filled : filled + k] = rows["label"]
        bad = nonfinite_rows(out.x[filled : filled + k])
        if bad.any():  # counted over the whole table, reported once at the end
            bad_ids.append(rows["id"][bad].astype(np.int64))
        filled += k

    with conn.cursor() as cur:
        statement = cur.mogrify(_copy_query(summary, include_test), (summary_labels(summary),))
        sink = FixedRowSink(dtype, take, expect=expect)
        try:
            cur.copy_expert(statement.decode(), sink)
        except psycopg2.errors.NumericValueOutOfRange:
            # double precision or numeric features beyond float32 fail the ::real[] cast.
            raise UserInputError(
                f"The features of {summary.table!r} hold values outside the float32 range "
                "(about +-3.4e38): rescale or drop those rows."
            ) from None
        sink.close()
    if filled != n:
        raise RuntimeError(f"{summary.table} changed while it was read: run prepare again")
    if bad_ids:
        ids = np.concatenate(bad_ids)
        raise_nonfinite(f"table {summary.table!r}", int(ids.size), int(ids.min()))
    return out


def summary_labels(summary: SourceSummary) -> list[str]:
    """``class_values`` as text, to match ``label::text`` on the server."""
    return [str(v) for v in summary.class_values]


def _copy_query(summary: SourceSummary, include_test: bool) -> sql.Composed:
    split = sql.Identifier("split") if summary.has_split else sql.Literal("train")
    splits = ("train", "test") if include_test else ("train",)
    return sql.SQL(
        """COPY (SELECT {id}::bigint,
                CASE WHEN {split} = 'test' THEN 1 ELSE 0 END,
                array_position(%s::text[], {label}::text) - 1,
                features::real[]
            FROM {table} WHERE {split} IN ({splits}))
        TO STDOUT WITH (FORMAT binary)"""
    ).format(
        id=sql.Identifier("id"),
        split=split,
        label=sql.Identifier(summary.label_column),
        table=sql.Identifier(summary.table),
        splits=sql.SQL(", ").join(sql.Literal(s) for s in splits),
    )
