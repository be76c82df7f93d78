"""Held-out evaluation: an experiment's model scored on a labelled table.

``evaluate_table`` streams a table with the layout of ``automl data load`` (``id``,
``features``, ``label``) through the model ``predict`` and ``export`` use (the best trial
at its best epoch), and returns accuracy, mean cross-entropy and the confusion matrix;
the result is kept in ``automl.evaluations`` (one row per experiment and table, the
latest) and shown by ``automl report``. Use it on rows the search never saw (a test
split loaded as its own table): the validation accuracy on the leaderboard chose the
model, so it is an optimistic estimate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from automl_core.errors import UserInputError
from automl_core.store import repository as repo

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
    features (naming the first id), or no row (in that split).
    """
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


def _label_key(value: Any) -> Any:
    # A label read back from SQL may be 3 where the data set recorded 3.0, or the reverse.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _class_index(value: Any, index_of: dict[Any, int], table: str) -> int:
    try:
        return index_of[_label_key(value)]
    except (KeyError, TypeError):
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
