"""Reads and writes of the ``evaluations`` table (``automl evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from automl_core.store.repository._common import _t, _tx


@dataclass(frozen=True)
class EvaluationRow:
    """An experiment's model scored on a labelled table.

    ``confusion[i][j]``: rows of true class ``class_values[i]`` predicted as
    ``class_values[j]``. ``loss``: mean cross-entropy in nats.
    """

    table_name: str
    trial_id: int
    epoch: int
    rows: int
    accuracy: float
    loss: float
    class_values: list[Any]
    confusion: list[list[int]]


def save_evaluation(conn: Any, experiment_id: int, row: EvaluationRow) -> None:
    """Keep ``row`` as the experiment's latest evaluation on its table (commits)."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (experiment_id, table_name, trial_id, epoch, rows, accuracy, "
                "loss, class_values, confusion) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (experiment_id, table_name) DO UPDATE SET "
                "trial_id = EXCLUDED.trial_id, epoch = EXCLUDED.epoch, rows = EXCLUDED.rows, "
                "accuracy = EXCLUDED.accuracy, loss = EXCLUDED.loss, "
                "class_values = EXCLUDED.class_values, confusion = EXCLUDED.confusion, "
                "evaluated_at = now()"
            ).format(_t("evaluations")),
            (
                experiment_id,
                row.table_name,
                row.trial_id,
                row.epoch,
                row.rows,
                row.accuracy,
                row.loss,
                Json(row.class_values),
                Json(row.confusion),
            ),
        )


def evaluations(conn: Any, experiment_id: int) -> list[EvaluationRow]:
    """The experiment's evaluations, by table name."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT table_name, trial_id, epoch, rows, accuracy, loss, class_values, "
                "confusion FROM {} WHERE experiment_id = %s ORDER BY table_name"
            ).format(_t("evaluations")),
            (experiment_id,),
        )
        return [EvaluationRow(*r) for r in cur.fetchall()]
