"""Reads and writes of the ``trial_epochs``, ``checkpoints`` and ``best_checkpoints`` tables.

A trial has two saved states: its latest (``checkpoints``), which training resumes from,
and its state at its best epoch (``best_checkpoints``), which is "the model": the one the
leaderboard ranks by, export writes and predict scores with (Keras' save-best-only,
Ray Tune's checkpoint score). Older states are not kept. The best epoch is the first
epoch with the highest validation accuracy, as the ``automl.leaderboard`` view's
``best_epoch`` defines it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg2 import sql

from automl_core.mop.types import JobRecord
from automl_core.store.repository._common import _t, _tx
from automl_core.store.repository._jobs import _upsert_jobs


@dataclass(frozen=True)
class EpochRow:
    trial_id: int
    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    valid_loss: float | None
    valid_accuracy: float | None
    seconds: float | None
    samples: int | None
    recorded_at: datetime


@dataclass(frozen=True)
class Checkpoint:
    """A saved state of a trial (its latest, or its best epoch's): inline ``state`` bytes
    and/or an artifact ``uri``."""

    epoch: int
    state: bytes | None
    uri: str | None


# --- epochs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochResult:
    """What one trained epoch leaves: its metrics (means over its rows) and the state
    after it. Written by ``record_epoch_results`` with the epoch's job-log rows."""

    trial_id: int
    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    valid_loss: float | None
    valid_accuracy: float | None
    seconds: float | None
    samples: int | None
    state: bytes


def record_epoch(
    conn: Any,
    experiment_id: int,
    trial_id: int,
    epoch: int,
    *,
    train_loss: float | None,
    train_accuracy: float | None,
    valid_loss: float | None,
    valid_accuracy: float | None,
    seconds: float | None,
    samples: int | None,
) -> None:
    """Upsert the metrics of one (trial, epoch); a re-run of the epoch overwrites them.

    Raises:
        ValueError: ``epoch`` is below 1 (epochs are 1-based).
    """
    _check_epoch(epoch)
    metrics = (train_loss, train_accuracy, valid_loss, valid_accuracy, seconds, samples)
    with _tx(conn) as cur:
        _upsert_epoch(cur, experiment_id, trial_id, epoch, metrics)


def record_epoch_results(
    conn: Any, experiment_id: int, results: Sequence[EpochResult], jobs: Sequence[JobRecord]
) -> None:
    """Write epochs as ``record_epoch`` and then ``save_checkpoint`` would, each in turn,
    and job-log rows as ``record_jobs``, all in one transaction (a writer's batch).

    Raises:
        ValueError: an epoch is below 1; nothing is written.
    """
    for result in results:
        _check_epoch(result.epoch)
    with _tx(conn) as cur:
        _upsert_jobs(cur, experiment_id, jobs)
        for r in results:
            metrics = (
                r.train_loss,
                r.train_accuracy,
                r.valid_loss,
                r.valid_accuracy,
                r.seconds,
                r.samples,
            )
            _upsert_epoch(cur, experiment_id, r.trial_id, r.epoch, metrics)
            _upsert_checkpoint(cur, experiment_id, r.trial_id, r.epoch, bytes(r.state), None)


def _check_epoch(epoch: int) -> None:
    if epoch < 1:
        raise ValueError(f"The value of epoch is {epoch}, but must be 1 or more (1-based).")


def _upsert_epoch(
    cur: Any, experiment_id: int, trial_id: int, epoch: int, metrics: tuple[Any, ...]
) -> None:
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (experiment_id, trial_id, epoch, train_loss, train_accuracy, "
            "valid_loss, valid_accuracy, seconds, samples) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (experiment_id, trial_id, epoch) DO UPDATE SET "
            "train_loss = EXCLUDED.train_loss, train_accuracy = EXCLUDED.train_accuracy, "
            "valid_loss = EXCLUDED.valid_loss, valid_accuracy = EXCLUDED.valid_accuracy, "
            "seconds = EXCLUDED.seconds, samples = EXCLUDED.samples, recorded_at = now()"
        ).format(_t("trial_epochs")),
        (experiment_id, trial_id, epoch, *metrics),
    )


def epochs(conn: Any, experiment_id: int, trial_ids: Sequence[int] | None = None) -> list[EpochRow]:
    """The epoch rows of the experiment (of ``trial_ids`` only, if given)."""
    where = sql.SQL("experiment_id = %s")
    params: list[Any] = [experiment_id]
    if trial_ids is not None:
        where = sql.SQL("{} AND trial_id = ANY(%s::integer[])").format(where)
        params.append(list(trial_ids))
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT trial_id, epoch, train_loss, train_accuracy, valid_loss, valid_accuracy, "
                "seconds, samples, recorded_at FROM {} WHERE {} ORDER BY trial_id, epoch"
            ).format(_t("trial_epochs"), where),
            params,
        )
        return [EpochRow(*r) for r in cur.fetchall()]


def last_epoch(conn: Any, experiment_id: int, trial_id: int) -> int:
    """The highest recorded epoch of the trial; 0 when it has none."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT COALESCE(max(epoch), 0) FROM {} WHERE experiment_id = %s AND trial_id = %s"
            ).format(_t("trial_epochs")),
            (experiment_id, trial_id),
        )
        return int(cur.fetchone()[0])


# --- checkpoints ----------------------------------------------------------------------


def save_checkpoint(
    conn: Any,
    experiment_id: int,
    trial_id: int,
    epoch: int,
    state: bytes | None = None,
    uri: str | None = None,
) -> bool:
    """Keep this as the trial's checkpoint unless a newer epoch is already saved; keep it
    as the trial's best-epoch state too when ``epoch`` is the trial's best epoch.

    Returns whether the latest checkpoint was written: an older epoch never overwrites a
    newer one (a late, retried task cannot roll a model back); the same epoch
    overwrites. The best-epoch state is written, in the same transaction, when the
    epoch's recorded validation accuracy is the trial's highest (its first epoch with
    it), so record the epoch's metrics (``record_epoch``) first.

    Raises:
        ValueError: neither ``state`` nor ``uri`` is given, or ``epoch`` is below 1.
    """
    if state is None and uri is None:
        raise ValueError("save_checkpoint needs the state bytes, an artifact uri, or both.")
    _check_epoch(epoch)
    blob = None if state is None else bytes(state)
    with _tx(conn) as cur:
        return _upsert_checkpoint(cur, experiment_id, trial_id, epoch, blob, uri)


def _upsert_checkpoint(
    cur: Any, experiment_id: int, trial_id: int, epoch: int, blob: bytes | None, uri: str | None
) -> bool:
    cur.execute(
        sql.SQL(
            "INSERT INTO {t} AS c (experiment_id, trial_id, epoch, state, uri) "
            "VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (experiment_id, trial_id) DO UPDATE SET epoch = EXCLUDED.epoch, "
            "state = EXCLUDED.state, uri = EXCLUDED.uri, updated_at = now() "
            "WHERE c.epoch <= EXCLUDED.epoch"
        ).format(t=_t("checkpoints")),
        (experiment_id, trial_id, epoch, blob, uri),
    )
    written = bool(cur.rowcount)
    # The same ordering as the leaderboard view's best_epoch (views.py).
    cur.execute(
        sql.SQL(
            "INSERT INTO {best} (experiment_id, trial_id, epoch, state, uri) "
            "SELECT %s, %s, %s, %s, %s WHERE %s = ("
            "  SELECT epoch FROM {epochs} WHERE experiment_id = %s AND trial_id = %s "
            "  AND valid_accuracy IS NOT NULL ORDER BY valid_accuracy DESC, epoch LIMIT 1"
            ") ON CONFLICT (experiment_id, trial_id) DO UPDATE SET epoch = EXCLUDED.epoch, "
            "state = EXCLUDED.state, uri = EXCLUDED.uri, updated_at = now()"
        ).format(best=_t("best_checkpoints"), epochs=_t("trial_epochs")),
        (experiment_id, trial_id, epoch, blob, uri, epoch, experiment_id, trial_id),
    )
    return written


def checkpoint_epochs(conn: Any, experiment_id: int, trial_ids: Sequence[int]) -> dict[int, int]:
    """The checkpoint epoch of each trial that has one (the states are not read)."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT trial_id, epoch FROM {} WHERE experiment_id = %s "
                "AND trial_id = ANY(%s::integer[])"
            ).format(_t("checkpoints")),
            (experiment_id, list(trial_ids)),
        )
        return {int(t): int(e) for t, e in cur.fetchall()}


def load_checkpoint(
    conn: Any, experiment_id: int, trial_id: int, *, best: bool = False
) -> Checkpoint | None:
    """The trial's latest checkpoint (``best``: its best epoch's state), or None."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT epoch, state, uri FROM {} WHERE experiment_id = %s AND trial_id = %s"
            ).format(_t("best_checkpoints" if best else "checkpoints")),
            (experiment_id, trial_id),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return Checkpoint(int(row[0]), None if row[1] is None else bytes(row[1]), row[2])
