"""Score a source table with a model and write the predictions to a new table.

The source table has the layout of ``automl data load`` (``id bigint, features real[],
...``); features are raw and are normalised here exactly as the training data was
(``automl_core.data.reader.normalize`` with the model's normalisation). Rows stream
through a server-side cursor in batches, each batch is scored with
``engine.predict_proba`` and appended to the output table with ``COPY``.

The output table ``(id bigint, predicted <label type>, probability real)`` is built
under a staging name, then renamed (after dropping the old one, with ``--replace``), all
in one transaction: a failure part-way (a bad row, a lost connection) leaves the old
table and no half-written one behind, and the old table is locked against readers only
for the final drop and rename, not for the whole scoring. ``predicted`` is the class
value (the label as loaded, with the source's label type when it has one);
``probability`` is the model's softmax probability of that class. The table's comment
records which model scored which table and when (:func:`provenance`), as JSON under
``automl_predictions``.

The features are read by name when both sides know their names: a model trained on a CSV
file (``ExportedModel.feature_names``) scoring a table loaded from one (its comment's
``feature_names``) takes the table's columns in the model's order, whatever the file's
(:func:`feature_order`); a missing or an extra column is refused before anything is
written. Otherwise (a table made in SQL, a model from before names were kept, other
sources) the array is read by position.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from psycopg2 import sql

from automl_core import package_version
from automl_core.data.feature_names import listed_names, table_order
from automl_core.data.tables import (
    check_replace_target,
    existing_table,
    find_table,
    read_source_meta,
    staging_name,
    swap_in,
)
from automl_core.data.validate import (
    check_row_columns,
    nonfinite_rows,
    raise_nonfinite,
    validate_output_table,
    validate_table_name,
)
from automl_core.errors import UserInputError
from automl_core.store.dialect import Dialect

if TYPE_CHECKING:
    from automl_core.data.reader import DatasetInfo
    from automl_core.export import ExportedModel

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4096
# Source label types that predictions keep; any other falls back to the class values'.
_LABEL_TYPES = {"smallint", "integer", "bigint", "text"}
_CURSOR_NAME = "automl_predict_source"


def label_sql_type(class_values: list[Any], source_label_type: str | None = None) -> str:
    """The SQL type of the ``predicted`` column.

    The source table's label type when it is an integer type or text (so predictions
    join back to labels); else ``bigint`` when every class value is an integer, else
    ``text``.
    """
    if source_label_type in _LABEL_TYPES:
        return source_label_type
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in class_values)
    return "bigint" if ints else "text"


def _copy_text(value: Any) -> str:
    """One field in COPY's text format (backslash escapes; ``\\N`` is NULL)."""
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_rows(ids: np.ndarray, labels: list[Any], probabilities: np.ndarray) -> io.StringIO:
    """Tab-separated ``id, predicted, probability`` rows for ``COPY ... FROM STDIN``."""
    buf = io.StringIO()
    for row_id, label, p in zip(ids.tolist(), labels, probabilities.tolist(), strict=True):
        buf.write(f"{int(row_id)}\t{_copy_text(label)}\t{p:.9g}\n")
    buf.seek(0)
    return buf


def provenance(model: ExportedModel, source_table: str) -> dict[str, Any]:
    """What a predictions table's comment records: the experiment, trial and epoch of the
    model (from its card; None where the card has no such field; ``experiment_id`` is the
    id in the database that trained it), where it came from (``loaded_from``: the export's
    folder or URI, None for an experiment's best model read from this database), the
    weights' SHA-256, the table scored, and when (UTC, ISO 8601). Read it back with
    ``obj_description('OUT'::regclass)``."""
    card = model.card
    lineage, trial, checkpoint = (card.get(k) or {} for k in ("lineage", "trial", "checkpoint"))
    return {
        "automl_predictions": {
            "source_table": source_table,
            "dataset": card["data"]["dataset"],
            "experiment": lineage.get("experiment"),
            "experiment_id": lineage.get("experiment_id"),
            "trial_id": trial.get("trial_id"),
            "epoch": checkpoint.get("epoch"),
            "valid_accuracy": checkpoint.get("valid_accuracy"),
            "loaded_from": model.origin,
            "weights_sha256": hashlib.sha256(model.state).hexdigest(),
            "scored_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "package_version": package_version(),
        }
    }


def _batch_features(rows: list[tuple[Any, Any]], table: str) -> tuple[np.ndarray, np.ndarray]:
    """Ids and a float ``[n, d]`` array from fetched ``(id, features)`` rows.

    The column types were checked (``check_row_columns``); this refuses, with a
    UserInputError naming ``table``, the column and the first such row, a NULL id, NULL
    features, or a row with another number of features than the first.
    """
    width = first_id = None
    for row_id, features in rows:
        if row_id is None:
            raise UserInputError(
                f"The table {table!r} has a row whose id is NULL (column 'id'), but every "
                "row needs an id, which keys its result: give those rows ids, or drop them "
                "(WHERE id IS NULL)."
            )
        if features is None:
            raise UserInputError(
                f"Row id {row_id} of {table!r} has NULL features (column 'features'): fix or "
                "drop that row (and any other WHERE features IS NULL)."
            )
        if width is None:
            width, first_id = len(features), row_id
        elif len(features) != width:
            raise UserInputError(
                f"Row id {row_id} of {table!r} has {len(features)} features, but row id "
                f"{first_id} has {width}: every row needs as many as the model's training "
                "data had; fix or drop the rows that differ."
            )
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    return ids, np.asarray([r[1] for r in rows], dtype=np.float64)


def _check_tables(conn: Any, source_table: str, out_table: str, replace: bool) -> str | None:
    """Validate both tables; return the source's label type (None when it has no label).

    With ``replace``, also drops an existing output table in the caller's transaction,
    which the caller rolls back: a view, a table others depend on, or one another session
    keeps locked is refused now, before the scoring, not after it.
    """
    validate_table_name(source_table, what="source table name")
    validate_output_table(out_table, option="--out-table", what="output table name")
    if source_table == out_table:
        raise UserInputError(
            f"The output table {out_table!r} is the source table: give another --out-table."
        )
    _, columns = existing_table(conn, source_table, what="source table")
    check_row_columns(source_table, columns)
    check_replace_target(
        conn, out_table, replace=replace, option="--out-table", what="output table"
    )
    return columns.get("label")


def predict_table(
    conn: Any,
    *,
    source_table: str,
    out_table: str,
    model: ExportedModel | str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    replace: bool = False,
    s3_client: Any | None = None,
) -> int:
    """Score every row of ``source_table`` and write ``out_table``; return the row count.

    ``model`` is an ``ExportedModel`` (see ``automl_core.export.load_exported``) or an
    experiment name, whose best trial is used. ``replace`` drops an existing
    ``out_table`` once the new one is complete, in the same transaction. Commits on success.

    Raises UserInputError, before anything is written, for a table name that is not a
    plain identifier, an output table the product owns (``*_packed``, the ``automl``
    schema), a missing source table or one without an integer ``id`` and a ``features``
    array of numbers, an existing output table without ``replace``, a ``batch_size``
    below 1, or an unknown experiment; and, with nothing written (the transaction is
    rolled back), for an output table that cannot be replaced (a view, one other objects
    depend on, or one another session keeps locked for longer than
    ``tables.REPLACE_LOCK_TIMEOUT_S``: checked before the scoring and again at the swap),
    and for source rows with a NULL id, NULL features, or features that do not fit the
    model or are NaN or infinite. A source table whose feature names (from the CSV file
    it was loaded from) are not the model's is refused before anything is written
    (:func:`feature_order`).
    """
    from automl_core.export import ExportedModel, best_model

    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserInputError(f"The batch size is {batch_size!r}, but must be at least 1.")
    try:
        label_type = _check_tables(conn, source_table, out_table, replace)
    finally:
        conn.rollback()  # end the catalog reads (and undo the trial drop) before scoring
    if out_table != out_table.lower():
        # Names are exact, as for source tables (`data load --table Digits`); psql folds
        # an unquoted name to lower case, so say how to read the table back.
        log.warning(
            '%s has upper-case letters: quote it in SQL, as "%s" (unquoted, it reads as %s)',
            out_table,
            out_table,
            out_table.lower(),
        )
    if not isinstance(model, ExportedModel):
        model = best_model(conn, model, s3_client=s3_client)
    classes = model.class_values
    total = 0
    try:
        # Called now, iterated below: the features' names are checked before the write.
        batches = scored_batches(conn, source_table, model, batch_size)
        with conn.cursor() as cur:
            staging = staging_name(conn, out_table)
            out = sql.Identifier(staging)
            cur.execute(
                sql.SQL("CREATE TABLE {} (id bigint, predicted {}, probability real){}").format(
                    out,
                    sql.SQL(label_sql_type(classes, label_type)),
                    Dialect.detect(conn).distributed_by("id"),
                )
            )
            cur.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(
                    out, sql.Literal(json.dumps(provenance(model, source_table)))
                )
            )
            copy_sql = sql.SQL("COPY {} (id, predicted, probability) FROM STDIN").format(out)
            for ids, proba, _ in batches:
                index = proba.argmax(axis=1)
                labels = [classes[i] for i in index.tolist()]
                cur.copy_expert(copy_sql, copy_rows(ids, labels, proba.max(axis=1)))
                total += len(ids)
            swap_in(cur, staging, out_table, replace=replace, option="--out-table")
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    log.info("wrote %d predictions from %s to %s", total, source_table, out_table)
    return total


def scored_batches(
    conn: Any,
    source_table: str,
    model: ExportedModel,
    batch_size: int,
    *,
    labels: bool = False,
    split: str | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[Any] | None]]:
    """Stream ``source_table`` through ``model``: per batch of at most ``batch_size`` rows,
    ``(ids [n], probabilities [n, classes], labels or None)``.

    Features are normalised as the model's training data was; ``labels`` also reads the
    ``label`` column, as loaded; ``split`` keeps only the rows of that split (``train``,
    ``test``). The table name must already be validated (it is quoted as an identifier).
    The features are taken in the model's order by name where both know their names
    (:func:`feature_order`, settled when this is called, before the first batch is
    read). Raises UserInputError at once for a table whose features' names are not the
    model's; while iterating, for rows whose features do not fit, and, before scoring the
    batch that holds the first one, for rows with NaN or infinite features (after
    normalisation to float32, as the model would see them), counted over the whole table.
    """
    order = feature_order(conn, source_table, model)
    return _scored(conn, source_table, model, batch_size, order, labels=labels, split=split)


def feature_order(conn: Any, table: str, model: ExportedModel) -> list[int] | None:
    """The positions in ``table``'s ``features`` of the model's features, in the model's
    order, when both name them (``feature_names.table_order``; logged at INFO when they
    differ from the table's order); None to read the array as it is: already in the
    model's order, or no names on either side (a table made in SQL, or whose comment no
    longer fits its rows, changed in SQL since it was loaded; a model trained before
    names were kept, or on another source).

    Raises UserInputError naming the table, the model's data set and the names when a
    feature of the model is missing from the table or the table has others.
    """
    names = model.dataset_info().feature_names
    oid = find_table(conn, table)
    if names is None or oid is None:
        return None
    listed = listed_names(read_source_meta(conn, oid) or {}, _row_width(conn, table))
    if listed is None:
        return None
    dataset = str(model.card["data"]["dataset"])
    order = table_order(listed, names, table=table, dataset=dataset)
    if order is not None:
        log.info(
            "the features of %s come in another order than the model's (data set %s): "
            "taken by name, as the table's comment names them",
            table,
            dataset,
        )
    return order


def _row_width(conn: Any, table: str) -> int | None:
    """The number of features of one row of ``table`` (a checked name); None if empty."""
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT cardinality(features) FROM {} WHERE features IS NOT NULL LIMIT 1"
            ).format(sql.Identifier(table))
        )
        row = cur.fetchone()
    return None if row is None else int(row[0])


def _scored(
    conn: Any,
    source_table: str,
    model: ExportedModel,
    batch_size: int,
    order: list[int] | None,
    *,
    labels: bool,
    split: str | None,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[Any] | None]]:
    """:func:`scored_batches`' batches, the features of each row taken at ``order``."""
    from automl_core.data.reader import normalize
    from automl_core.training.engine import predict_proba  # torch: only once there is work

    info = model.dataset_info()
    columns = "id, features, label" if labels else "id, features"
    with conn.cursor(name=_CURSOR_NAME) as source:
        source.itersize = batch_size
        query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(columns), sql.Identifier(source_table))
        if split is None:
            source.execute(query)
        else:
            source.execute(query + sql.SQL(" WHERE split = %s"), (split,))
        while rows := source.fetchmany(batch_size):
            ids, raw = _batch_features([(r[0], r[1]) for r in rows], source_table)
            if order is not None and raw.shape[1] == len(order):  # else normalize refuses
                raw = raw[:, order]
            x = normalize(raw, info, source=f"the table {source_table!r}")
            bad = nonfinite_rows(x)
            if bad.any():
                _refuse_nonfinite(source, ids[bad], source_table, info, batch_size)
            proba = predict_proba(
                model.config,
                model.state,
                x,
                input_shape=model.feature_shape,
                num_classes=model.num_classes,
            )
            yield ids, proba, ([r[2] for r in rows] if labels else None)


def _refuse_nonfinite(
    source: Any, bad_ids: np.ndarray, table: str, info: DatasetInfo, batch_size: int
) -> None:
    """Read the rest of ``source`` to count every NaN/inf row, then raise UserInputError
    naming the count and the lowest id (as ``automl data prepare`` reports them)."""
    from automl_core.data.reader import normalize

    found = [bad_ids]
    while rows := source.fetchmany(batch_size):
        ids, raw = _batch_features([(r[0], r[1]) for r in rows], table)
        found.append(ids[nonfinite_rows(normalize(raw, info, source=f"the table {table!r}"))])
    every = np.concatenate(found)
    raise_nonfinite(f"The table {table!r}", int(every.size), int(every.min()))
