"""Reads of the results for reports and exports: the leaderboard, epochs, rungs and jobs.

Each returns plain rows in the order of its ``*_COLUMNS`` (the caller builds frames or
cards from them) and leaves the connection's transaction state as it found it
(``read_cursor``). The ranking rule lives in the ``automl.leaderboard`` view
(``automl_core.store.views``): best validation accuracy first, ties by trial id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql

from automl_core.store.repository._common import _t, read_cursor

#: Columns of the leaderboard, in order.
LEADERBOARD_COLUMNS = (
    "rank",
    "trial_id",
    "status",
    "bracket",
    "batch",
    "rung",
    "epochs",
    "best_valid_accuracy",
    "best_epoch",
    "final_valid_accuracy",
    "final_valid_loss",
    "best_valid_loss",
    "train_seconds",
    "config",
    "error",
    "created_at",
)
EPOCH_COLUMNS = (
    "trial_id",
    "epoch",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_accuracy",
    "seconds",
    "samples",
    "recorded_at",
)
RUNG_COLUMNS = ("bracket", "rung", "trial_id", "target_epochs", "metric", "promoted", "reason")
JOB_COLUMNS = ("trial_id", "epoch", "partition", "kind", "worker", "started_at", "ended_at")


def _columns(names: Sequence[str], table: str | None = None) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.Identifier(table, c) if table else sql.Identifier(c) for c in names
    )


def _rows(conn: Any, query: sql.Composable, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with read_cursor(conn) as cur:
        cur.execute(query, params)
        return [tuple(r) for r in cur.fetchall()]


def leaderboard_rows(
    conn: Any, experiment_id: int, *, limit: int | None = None
) -> list[tuple[Any, ...]]:
    """The experiment's trials, best first (at most ``limit``), as ``LEADERBOARD_COLUMNS``."""
    query = sql.SQL("SELECT {} FROM {} WHERE experiment_id = %s ORDER BY rank").format(
        _columns(LEADERBOARD_COLUMNS), _t("leaderboard")
    )
    params: list[Any] = [experiment_id]
    if limit is not None:
        query += sql.SQL(" LIMIT %s")
        params.append(limit)
    return _rows(conn, query, params)


def best_trial_with_checkpoint(conn: Any, experiment_id: int) -> dict[str, Any] | None:
    """The leaderboard row (``LEADERBOARD_COLUMNS`` -> value) of the best-ranked trial
    with a validation result and a checkpoint (best-epoch or latest); None when none has."""
    query = sql.SQL(
        "SELECT {cols} FROM {board} AS l "
        "WHERE l.experiment_id = %s AND l.best_valid_accuracy IS NOT NULL AND ("
        "EXISTS (SELECT 1 FROM {best} AS b "
        "WHERE b.experiment_id = l.experiment_id AND b.trial_id = l.trial_id) OR "
        "EXISTS (SELECT 1 FROM {latest} AS c "
        "WHERE c.experiment_id = l.experiment_id AND c.trial_id = l.trial_id)) "
        "ORDER BY l.rank LIMIT 1"
    ).format(
        cols=_columns(LEADERBOARD_COLUMNS, "l"),
        board=_t("leaderboard"),
        best=_t("best_checkpoints"),
        latest=_t("checkpoints"),
    )
    rows = _rows(conn, query, (experiment_id,))
    return dict(zip(LEADERBOARD_COLUMNS, rows[0], strict=True)) if rows else None


def epoch_history_rows(conn: Any, experiment_id: int) -> list[tuple[Any, ...]]:
    """One row per (trial, epoch) as ``EPOCH_COLUMNS``, by trial then epoch."""
    query = sql.SQL("SELECT {} FROM {} WHERE experiment_id = %s ORDER BY trial_id, epoch").format(
        _columns(EPOCH_COLUMNS), _t("trial_epochs")
    )
    return _rows(conn, query, (experiment_id,))


def rung_result_rows(conn: Any, experiment_id: int) -> list[tuple[Any, ...]]:
    """Hyperband rung membership as ``RUNG_COLUMNS``, by bracket, rung and trial."""
    query = sql.SQL(
        "SELECT {} FROM {} WHERE experiment_id = %s ORDER BY bracket, rung, trial_id"
    ).format(_columns(RUNG_COLUMNS), _t("rungs"))
    return _rows(conn, query, (experiment_id,))


def job_log_rows(conn: Any, experiment_id: int) -> list[tuple[Any, ...]]:
    """Finished sub-epoch jobs as ``JOB_COLUMNS``, by start time."""
    query = sql.SQL(
        "SELECT {} FROM {} WHERE experiment_id = %s AND ended_at IS NOT NULL ORDER BY started_at"
    ).format(_columns(JOB_COLUMNS), _t("mop_jobs"))
    return _rows(conn, query, (experiment_id,))
