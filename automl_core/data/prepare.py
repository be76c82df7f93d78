"""Packing a source table into ``<name>_packed`` and recording it in ``automl.datasets``.

Implementation notes
- Validation rows: when the source has a ``test`` split and no fraction is given, the
  test rows are the validation set; otherwise a seeded, stratified fraction (default 0.2)
  of the ``train`` rows is held out (the ``test`` rows, if any, are then left unpacked).
- Determinism: rows are put in ``id`` order before any random draw, so the same table and
  seed give the same packing whatever order the server returns rows in (Greenplum returns
  segments in any order). Draws: validation choice, then the train shuffle, then the
  validation shuffle, all from ``numpy.random.default_rng(seed)``.
- Partitions: train rows are shuffled and cut into P near-equal parts; validation rows
  likewise into P parts, so the worker holding partition p holds both parts p.
- Normalisation (``--normalize``): statistics of the training rows, applied to train and
  validation rows; stored as float32. ``auto`` standardises each feature on its own for
  a source whose features were separate columns (a CSV file's, in their own units), and
  uses one global mean and std over every value for array features (images, signals, a
  table's ``features`` array), which keeps the relative scales between them
  (``packing.normalization_kind``); a data set packed before keeps its kind under
  ``auto``. Values beyond float32 once normalised are refused.
- Atomicity: the packed table is dropped, created and filled, and the datasets row is
  upserted, in one transaction. A failure rolls it all back. A transaction-level advisory
  lock on the dataset name serialises concurrent prepares of the same dataset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg2 import sql

from automl_core.data import packing
from automl_core.data.pgcopy import HEADER, TRAILER, copy_in, encode_packed_row
from automl_core.data.reader import DatasetInfo
from automl_core.data.scan import SourceRows, SourceSummary, inspect_source, read_rows
from automl_core.data.tables import find_table, segment_count
from automl_core.data.validate import packed_table_name
from automl_core.errors import UserInputError
from automl_core.store import repository as repo
from automl_core.store.dialect import Dialect

log = logging.getLogger(__name__)

DEFAULT_VALIDATION_FRACTION = 0.2
COPY_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class PackPlan:
    """Which source rows (positions in :class:`SourceRows`) go to which partition."""

    train: list[np.ndarray]
    valid: list[np.ndarray]
    validation_from: str  # "test split" or "fraction F of train"


def prepare_dataset(
    conn: Any,
    name: str,
    *,
    partitions: int | None = None,
    validation_fraction: float | None = None,
    seed: int = 0,
    buffer_size: int | None = None,
    label_column: str = "label",
    normalize: str = "auto",
) -> DatasetInfo:
    """Pack source table ``name`` into ``<name>_packed`` and upsert ``automl.datasets``; commit.

    ``partitions`` defaults to the segment count on Greenplum and is required on
    PostgreSQL. ``normalize`` is one of ``packing.NORMALIZE_CHOICES`` (see the module
    notes). Raises UserInputError, with the database unchanged, for a bad argument
    or source table (see :func:`~automl_core.data.scan.inspect_source`), NaN/inf features,
    too few rows for the partitions, or a ``<name>_packed`` table that is not ours.
    The ``automl`` schema must exist (``automl_core.store.migrations.migrate``).
    """
    start = time.perf_counter()
    packed = packed_table_name(name)
    _check_arguments(partitions, validation_fraction, seed, normalize)
    try:
        _require_schema(conn)
        # Two prepares of one dataset would race on CREATE TABLE: the second waits here.
        repo.lock_dataset(conn, name)
        dialect = Dialect.detect(conn)
        p = _partition_count(conn, dialect, partitions)
        summary = inspect_source(conn, name, label_column=label_column)
        use_test = validation_fraction is None and summary.n_test > 0
        fraction = None if use_test else (validation_fraction or DEFAULT_VALIDATION_FRACTION)
        _check_sizes(summary, p, fraction)
        _check_packed_is_ours(conn, name, packed)
        row_bytes = 4 * summary.n_features
        if buffer_size is not None:
            packing.check_buffer_size(buffer_size, row_bytes)
        rows = read_rows(conn, summary, include_test=use_test)
        plan = make_plan(rows, p, fraction, seed)
        train_rows = np.concatenate(plan.train)
        old = repo.dataset_record(conn, name)
        kind = _normalization_kind(normalize, summary.source, old)

        def fit(kind: str) -> packing.Normalization:
            return packing.fit_normalization(rows.x, train_rows, per_feature=kind == "per-feature")

        norm = fit(kind)
        _check_experiments_keep_their_data(conn, name, summary, old, norm, fit)
        biggest = max(part.size for part in plan.train)
        size = buffer_size or packing.default_buffer_size(row_bytes, biggest)
        _write_packed(conn, dialect, packed, rows, plan, norm, size)
        info = DatasetInfo(
            name=name,
            feature_shape=summary.feature_shape,
            num_classes=len(summary.class_values),
            class_values=list(summary.class_values),
            partitions=p,
            n_train=int(train_rows.size),
            n_valid=int(sum(part.size for part in plan.valid)),
            rows_per_partition={
                "train": [int(part.size) for part in plan.train],
                "valid": [int(part.size) for part in plan.valid],
            },
            normalization=norm.as_dict(),
            source=summary.source,
            source_table=name,
            packed_table=packed,
            source_state=summary.state,
            feature_names=summary.feature_names,
        )
        repo.upsert_dataset(conn, info.record())
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    log.info(
        "prepared %s: %d train + %d valid rows in %d partitions (%s, %s normalisation) in %.2f s",
        name,
        info.n_train,
        info.n_valid,
        p,
        plan.validation_from,
        norm.kind,
        time.perf_counter() - start,
    )
    return info


# An experiment in these states may still read the packed partitions.
_MAY_STILL_TRAIN = (repo.ExperimentState.RUNNING, repo.ExperimentState.INTERRUPTED)


def _normalization_kind(normalize: str, source: str, old: Mapping[str, Any] | None) -> str:
    """The kind to pack with: ``normalize`` when given; for ``auto``, the kind the data set
    was packed with before (a choice made once holds when a DAG's data step or a plain
    ``prepare`` packs it again), else what ``packing.normalization_kind`` picks."""
    fresh = packing.normalization_kind(normalize, source)
    if normalize != "auto" or old is None:
        return fresh
    kept = packing.Normalization.from_dict(old["normalization"]).kind
    if kept != fresh:  # a CSV packed by an earlier automl, say: say how to change it
        log.info(
            "keeping the %s normalisation %s was packed with; --normalize %s packs it %s",
            kept,
            old["name"],
            fresh,
            "per feature" if fresh == "per-feature" else "with one mean and std",
        )
    return kept


def _names(names: tuple[str, ...] | None) -> list[str] | None:
    return None if names is None else list(names)


def _check_experiments_keep_their_data(
    conn: Any,
    name: str,
    summary: SourceSummary,
    old: Mapping[str, Any] | None,
    norm: packing.Normalization,
    fit: Callable[[str], packing.Normalization],
) -> None:
    """Refuse a re-packing that would change the data under experiments trained on it.

    An experiment's training reads the packed partitions (a running or interrupted one
    reads them again when it goes on): nothing is re-packed while one may still train.
    A finished experiment keeps its own copy of the data set's row (shape, classes,
    normalisation) for its export and predictions; one created before that copy existed
    (schema 9) reads the data set's row, so under it only the same data (re-packed into
    other partitions, say) is. ``old`` is the data set's row (None: never packed), ``norm``
    the new statistics and ``fit(kind)`` the training rows' statistics of another kind.
    Raises UserInputError naming them and the fix.
    """
    experiments = repo.experiments_on_dataset(conn, name)
    unfinished = [n for n, status, _ in experiments if status in _MAY_STILL_TRAIN]
    if unfinished:
        raise UserInputError(
            f"The data set {name!r} cannot be packed again now: experiments "
            f"{', '.join(unfinished)} train on it (running or interrupted), and new "
            "partitions would change the data under them. Let them finish first, or load "
            "the data into another table (automl data load ... --table NEW) and prepare that."
        )
    pinned = [n for n, _, keeps_data in experiments if not keeps_data]
    if not pinned or old is None:
        return
    changed = [
        what
        for what, before, now in (
            ("feature shape", list(old["feature_shape"]), list(summary.feature_shape)),
            ("class values", list(old["class_values"]), list(summary.class_values)),
            # Exported, their models pick a DataFrame's columns by these names.
            ("feature names", old.get("feature_names"), _names(summary.feature_names)),
        )
        if before != now
    ]
    packed_with = packing.Normalization.from_dict(old["normalization"])
    other_kind = packed_with.kind != norm.kind
    if other_kind:
        changed.append(f"normalisation ({packed_with.kind} before, {norm.kind} now)")
    if not packed_with.isclose(fit(packed_with.kind) if other_kind else norm):
        changed.append("normalisation (the training rows differ)")
    if changed:
        # Only the kind changes: packing it as before is the first way out.
        only_kind = other_kind and len(changed) == 1
        keep = f"pass --normalize {packed_with.kind} to pack it as before, or " if only_kind else ""
        raise UserInputError(
            f"The data set {name!r} cannot be packed again from this table: its "
            f"{', '.join(changed)} would change, but the models of experiments "
            f"{', '.join(pinned)} (created before automl kept each experiment's data) were "
            f"trained on the data as packed now (their export and predictions read it): "
            f"{keep}load the data into another table (automl data load ... --table NEW) "
            "and prepare that."
        )


def _check_arguments(
    partitions: int | None, fraction: float | None, seed: int, normalize: str
) -> None:
    if partitions is not None and partitions < 1:
        raise UserInputError(f"--partitions is {partitions}, but must be at least 1.")
    if fraction is not None and not 0.0 < fraction < 1.0:
        raise UserInputError(
            f"--validation-fraction is {fraction}, but must be between 0 and 1 (exclusive)."
        )
    if seed < 0:
        raise UserInputError(f"--seed is {seed}, but must be a non-negative integer.")
    if normalize not in packing.NORMALIZE_CHOICES:
        raise UserInputError(
            f"--normalize is {normalize!r}, but must be one of "
            f"{', '.join(packing.NORMALIZE_CHOICES)}."
        )


def _partition_count(conn: Any, dialect: Dialect, partitions: int | None) -> int:
    if partitions is not None:
        return partitions
    if dialect.is_greenplum:
        segments = segment_count(conn)
        if segments >= 1:
            return segments
    raise UserInputError(
        "--partitions is required on PostgreSQL (on Greenplum it defaults to the number of "
        "segments): pass --partitions P, e.g. the number of GPUs."
    )


def _check_sizes(summary: SourceSummary, p: int, fraction: float | None) -> None:
    """Every partition must get at least one train and one validation row."""
    if fraction is None:
        n_valid, n_train, origin = summary.n_test, summary.n_train, "test split"
    else:
        n_valid = int(round(fraction * summary.n_train))
        n_train, origin = summary.n_train - n_valid, f"validation fraction {fraction}"
    if n_train < p:
        raise UserInputError(
            f"The table {summary.table!r} has {n_train} training rows, fewer than the {p} "
            f"partition{'s' if p > 1 else ''}: {_fewer(p)}load more rows."
        )
    if n_valid < p:
        raise UserInputError(
            f"The {origin} of {summary.table!r} gives {n_valid} validation rows, fewer than "
            f"the {p} partition{'s' if p > 1 else ''}: {_fewer(p)}"
            + ("pass --validation-fraction F." if fraction is None else "give a larger one.")
        )


def _fewer(p: int) -> str:
    return "use fewer --partitions or " if p > 1 else ""


def _check_packed_is_ours(conn: Any, name: str, packed: str) -> None:
    """Refuse to drop a ``<name>_packed`` table that no dataset row says we made."""
    if find_table(conn, packed) is None:
        return
    if not repo.dataset_owns_table(conn, name, packed):
        raise UserInputError(
            f"A table {packed!r} exists but is not the packed table of dataset {name!r}: "
            "rename or drop it, or load the source under another name."
        )


def make_plan(rows: SourceRows, p: int, fraction: float | None, seed: int) -> PackPlan:
    """Assign rows to train/validation partitions (see the module notes for the draws)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(rows.ids, kind="stable")
    test = rows.is_test[order]
    train_pos, test_pos = order[~test], order[test]
    if fraction is None:
        valid_pos, origin = test_pos, "test split"
    else:
        mask = packing.stratified_validation(rows.labels[train_pos], fraction, rng)
        train_pos, valid_pos = train_pos[~mask], train_pos[mask]
        origin = f"fraction {fraction} of train"
    return PackPlan(
        train=packing.split_partitions(train_pos, p, rng),
        valid=packing.split_partitions(valid_pos, p, rng),
        validation_from=origin,
    )


def packed_table_ddl(packed: str, dialect: Dialect) -> sql.Composed:
    """``CREATE TABLE`` for a packed table; distributed by partition on Greenplum."""
    return sql.SQL(
        """CREATE TABLE {t} (
            split text NOT NULL,
            "partition" integer NOT NULL,
            buffer integer NOT NULL,
            n integer NOT NULL,
            x bytea NOT NULL,
            y bytea NOT NULL,
            PRIMARY KEY (split, "partition", buffer)
        ){dist}"""
    ).format(t=sql.Identifier(packed), dist=dialect.distributed_by("partition"))


def _write_packed(
    conn: Any,
    dialect: Dialect,
    packed: str,
    rows: SourceRows,
    plan: PackPlan,
    norm: packing.Normalization,
    buffer_size: int,
) -> None:
    ident = sql.Identifier(packed)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        cur.execute(packed_table_ddl(packed, dialect))
        # Float features barely compress: skip pglz (EXTERNAL = out of line, uncompressed),
        # which makes both writing and reading cheaper.
        for col in ("x", "y"):
            cur.execute(
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STORAGE EXTERNAL").format(
                    ident, sql.Identifier(col)
                )
            )
        copy = sql.SQL(
            'COPY {} (split, "partition", buffer, n, x, y) FROM STDIN WITH (FORMAT binary)'
        ).format(ident)
        stream = _packed_stream(rows, plan, norm, buffer_size, packed)
        copy_in(cur, copy.as_string(conn), stream, COPY_READ_SIZE)


def _packed_stream(
    rows: SourceRows, plan: PackPlan, norm: packing.Normalization, buffer_size: int, packed: str
) -> Iterator[bytes]:
    yield HEADER
    for split, parts in (("train", plan.train), ("valid", plan.valid)):
        for p, positions in enumerate(parts):
            for b, piece in enumerate(packing.buffer_slices(positions.size, buffer_size)):
                chosen = positions[piece]
                with np.errstate(over="ignore"):  # overflow is refused just below
                    x = norm.apply(rows.x[chosen])
                _check_finite(x, packed)
                yield encode_packed_row(split, p, b, x, rows.labels[chosen])
    yield TRAILER


def _check_finite(x: np.ndarray, packed: str) -> None:
    """Refuse normalised features beyond float32 (values near its limit, +-3.4e38, minus a
    mean of the other sign), naming the first such feature and the fix."""
    bad = ~np.isfinite(x.reshape(x.shape[0], -1))
    if bad.any():
        feature = int(np.argmax(bad.any(axis=0)))
        raise UserInputError(
            f"Normalising the features for {packed!r} gives values beyond float32's range "
            f"(feature {feature}, counting from 0 in the flattened row): its values are too "
            "close to float32's limit (3.4e38). Load them in smaller units (divide that "
            "column by a power of ten), then prepare again."
        )


def _require_schema(conn: Any) -> None:
    # Checked up front: a failing statement later would only say "relation does not exist".
    if not repo.datasets_table_exists(conn):
        raise UserInputError(
            "The automl schema does not exist in this database: migrate it first "
            "(automl_core.store.migrations.migrate, which the automl commands run)."
        )
