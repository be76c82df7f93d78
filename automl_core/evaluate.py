"""Held-out evaluation: an experiment's model scored on a labelled table.

``evaluate_table`` streams a table with the layout of ``automl data load`` (``id``,
``features``, ``label``) through the model ``predict`` and ``export`` use (the best trial
at its best epoch), and returns accuracy, mean cross-entropy and the confusion matrix;
the result is kept in ``automl.evaluations`` (one row per experiment and table, the
latest) and shown by ``automl report``. Use it on rows the search never saw (a test
split loaded as its own table): the validation accuracy on the leaderboard chose the
model, so it is an optimistic estimate. A table that is not held out (the experiment's
own source table, or its test split when that was the validation set) is scored all the
same, with a warning that says so.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from automl_core.errors import UserInputError
from automl_core.store import repository as repo

if TYPE_CHECKING:
    from automl_core.data.reader import DatasetInfo

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4096
_MIN_PROBABILITY = 1e-12  # a confidently wrong row costs ~27.6 nats, not infinity


def evaluate_table(
    conn: Any,
    experiment_name: str,
    table: str,
    *,
    split: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> repo.EvaluationRow:
    """Score ``table`` (only its ``split`` rows, e.g. ``test``, when given) with the
    experiment's best model; save and return the result (saved under ``table:split``).

    Returns an ``EvaluationRow``: rows, accuracy (fraction correct), loss (mean
    cross-entropy in nats, probabilities floored at 1e-12), and ``confusion[i][j]``, the
    rows of true class ``class_values[i]`` predicted as ``class_values[j]``.

    Raises UserInputError, before anything is written, for a table name that is not a
    plain identifier, a missing table or one without ``id`` (an integer), ``features`` (an
    array of numbers) and ``label``, an unknown experiment or one without a model yet, a
    ``batch_size`` below 1, a label the model does not know (naming it), a row with a NULL
    id or NULL features or features that do not fit the model, rows with NaN or infinite
    features (naming the first id), or no row (in that split). A table loaded from a CSV
    file is read by its columns' names when the model knows them, as ``automl predict``
    reads it (``predict.feature_order``: another order is taken by name; a missing or
    extra column is refused).
    """
    from automl_core.data.reader import experiment_dataset
    from automl_core.data.tables import existing_table
    from automl_core.data.validate import check_row_columns, validate_table_name
    from automl_core.export import best_model
    from automl_core.predict import scored_batches

    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserInputError(f"The batch size is {batch_size!r}, but must be at least 1.")
    validate_table_name(table, what="table name")
    _, columns = existing_table(conn, table)
    if split is not None and "split" not in columns:
        raise UserInputError(
            f"The table {table!r} has no split column: drop --split to score all its rows."
        )
    check_row_columns(table, columns, label=True)
    conn.rollback()  # end the catalog reads' transaction before the long one
    model = best_model(conn, experiment_name)
    classes = model.class_values
    index_of = {_label_key(v): i for i, v in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    nats = 0.0
    try:
        batches = scored_batches(conn, table, model, batch_size, labels=True, split=split)
        for _, proba, labels in batches:
            assert labels is not None
            true = np.array([_class_index(v, index_of, table) for v in labels], dtype=np.int64)
            predicted = proba.argmax(axis=1)
            np.add.at(confusion, (true, predicted), 1)
            picked = proba[np.arange(len(true)), true]
            nats -= float(np.log(np.maximum(picked, _MIN_PROBABILITY)).sum())
    finally:
        conn.rollback()  # the server-side cursor's read transaction
    rows = int(confusion.sum())
    where = table if split is None else f"{table}:{split}"
    if rows == 0:
        raise UserInputError(f"The table {where!r} has no rows to evaluate.")
    data = experiment_dataset(conn, repo.experiment_record(conn, experiment_name))
    train_rows = _train_rows(conn, table) if (table, split) == (data.source_table, "test") else None
    note = not_held_out(experiment_name, table, split, data, scored=rows, train_rows=train_rows)
    if note:
        log.warning("%s", note)
    result = repo.EvaluationRow(
        table_name=where,
        trial_id=int(model.card["trial"]["trial_id"]),
        epoch=int(model.card["checkpoint"]["epoch"]),
        rows=rows,
        accuracy=float(np.trace(confusion)) / rows,
        loss=nats / rows,
        class_values=list(classes),
        confusion=confusion.tolist(),
    )
    repo.save_evaluation(conn, int(model.card["lineage"]["experiment_id"]), result)
    return result


def not_held_out(
    experiment_name: str,
    table: str,
    split: str | None,
    data: DatasetInfo,
    *,
    scored: int,
    train_rows: int | None,
) -> str | None:
    """Why the ``scored`` rows of ``table`` (its ``split`` rows, when given) are no
    held-out estimate for the experiment whose data set is ``data``; None when nothing
    says so (a copy of the rows under another name goes unnoticed).

    They are not when ``table`` is the data set's source table and the rows include its
    ``train`` rows (trained on), or are its ``test`` rows and those were the validation
    set, which chose the model: then the table's ``train_rows`` (counted now) are the
    data set's ``n_train`` and the test rows its ``n_valid``, where a validation fraction
    would have taken some of the train rows.
    """
    if table != data.source_table:
        return None
    if split != "test":
        rows = "its rows" if split is None else f"its {split!r} rows"
        return (
            f"The table {table!r} is the source table of experiment {experiment_name!r}: "
            f"the model was trained and chosen on {rows}, so this accuracy is not a held-out "
            "estimate. Evaluate on rows the search never saw: a test file loaded as a table "
            "of its own, or --split test of a table prepared with --validation-fraction."
        )
    if train_rows == data.n_train and scored == data.n_valid:
        return (
            f"The 'test' rows of {table!r} were the validation set of experiment "
            f"{experiment_name!r} (`automl data prepare` validates on a source's test split "
            "unless given --validation-fraction): they chose the model, so this accuracy is "
            "optimistic, as the leaderboard's is. Evaluate on rows the search never saw: a "
            "test file loaded as a table of its own."
        )
    return None


def _train_rows(conn: Any, table: str) -> int:
    """The rows of ``table`` (a checked name) whose split is ``train``."""
    from psycopg2 import sql

    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE split = 'train'").format(sql.Identifier(table))
        )
        count = int(cur.fetchone()[0])
    conn.rollback()
    return count


def _label_key(value: Any) -> Any:
    # A label read back from SQL may be 3 where the data set recorded 3.0, or the reverse.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _sql_text(value: Any) -> str:
    """``value`` as PostgreSQL's ``::text`` writes it, which is how ``automl data prepare``
    records the classes of a label column that is neither integer nor text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _class_index(value: Any, index_of: dict[Any, int], table: str) -> int:
    try:
        return index_of[_label_key(value)]
    except (KeyError, TypeError):
        pass
    try:
        # A boolean (or numeric, date) label column: its classes are its text.
        return index_of[_sql_text(value)]
    except KeyError:
        known = ", ".join(repr(v) for v in list(index_of)[:10])
        raise UserInputError(
            f"The table {table!r} has the label {value!r}, which the model was not trained "
            f"on (its classes: {known}{', ...' if len(index_of) > 10 else ''}): evaluate on "
            "rows of the same classes."
        ) from None


def format_evaluation(result: repo.EvaluationRow) -> str:
    """The result as text: the figures, then the confusion matrix (true class per row)."""
    width = max(6, *(len(str(v)) for v in result.class_values))
    lines = [
        f"{result.table_name}: {result.rows} rows, trial {result.trial_id} at epoch "
        f"{result.epoch}: accuracy {result.accuracy:.4f}, loss {result.loss:.4f}",
        "confusion matrix (rows: true class, columns: predicted):",
        " " * width + "".join(f"{v!s:>{width}}" for v in result.class_values),
    ]
    for value, counts in zip(result.class_values, result.confusion, strict=True):
        lines.append(f"{value!s:>{width}}" + "".join(f"{c:>{width}}" for c in counts))
    return "\n".join(lines)
