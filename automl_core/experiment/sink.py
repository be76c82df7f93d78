"""The runner's results, written to the database (keyed upserts: reruns never duplicate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from automl_core.mop.runner import EpochMetrics
from automl_core.mop.types import JobRecord
from automl_core.store import repository as repo
from automl_core.store.connection import RetryingConnection


def retrying(conn: Any) -> RetryingConnection:
    """``conn`` itself when it already retries; else a wrapper that never reconnects."""
    return conn if isinstance(conn, RetryingConnection) else RetryingConnection(None, conn)


class DatabaseSink:
    """Writes the job log, per-epoch metrics and checkpoints of one experiment.

    ``conn`` is a connection, or a ``RetryingConnection`` whose retries ride out a
    restart of the server: every write here is an upsert, safe to repeat.
    """

    def __init__(self, conn: Any, experiment_id: int) -> None:
        self._db = retrying(conn)
        self._experiment_id = experiment_id

    def record_jobs(self, rows: Sequence[JobRecord]) -> None:
        if not rows:
            return
        self._db.run(lambda conn: repo.record_jobs(conn, self._experiment_id, rows))

    def record_epoch(self, trial_id: int, epoch: int, metrics: EpochMetrics, state: bytes) -> None:
        # Metrics first, checkpoint second: a crash between the two leaves the checkpoint one
        # epoch behind, so the rerun redoes that epoch and overwrites its metrics row.
        self._db.run(
            lambda conn: repo.record_epoch(
                conn,
                self._experiment_id,
                trial_id,
                epoch,
                train_loss=metrics.train_loss,
                train_accuracy=metrics.train_accuracy,
                valid_loss=metrics.valid_loss,
                valid_accuracy=metrics.valid_accuracy,
                seconds=metrics.seconds,
                samples=metrics.samples,
            )
        )
        self._db.run(
            lambda conn: repo.save_checkpoint(
                conn, self._experiment_id, trial_id, epoch, state=state
            )
        )

    def load_checkpoint(self, trial_id: int) -> tuple[int, bytes | None]:
        checkpoint = self._db.run(
            lambda conn: repo.load_checkpoint(conn, self._experiment_id, trial_id)
        )
        if checkpoint is None:
            return 0, None
        return checkpoint.epoch, checkpoint.state
