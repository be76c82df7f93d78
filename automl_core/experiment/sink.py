"""The runner's results, written to the database (keyed upserts: reruns never duplicate)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from automl_core.mop.runner import EpochMetrics
from automl_core.mop.types import JobRecord
from automl_core.store import repository as repo
from automl_core.store.connection import RetryingConnection, retry_window_s

FLUSH_MARGIN_S = 60.0  # a flush waits this long past the database's retry window
# States handed over but not yet written, in bytes: past this the runner waits for the
# writer, so a slow database holds up training instead of filling the driver's memory.
MAX_QUEUED_BYTES = 256 * 2**20


def retrying(conn: Any) -> RetryingConnection:
    """``conn`` itself when it already retries; else a wrapper that never reconnects."""
    return conn if isinstance(conn, RetryingConnection) else RetryingConnection(None, conn)


class DatabaseSink:
    """Writes the job log, per-epoch metrics and checkpoints of one experiment, behind
    the runner's back.

    The runner hands an epoch's results over and goes on: a writer thread writes what
    has queued up in one transaction (``record_epoch_results``: keyed upserts), so the
    driver does not stop between jobs for the database. ``flush()`` returns once
    everything handed over is written. Reading a checkpoint flushes first, and the
    engine flushes before it marks a request done or reads where a trial stands, so
    whatever reads results (promotions, proposals, a restarted engine) sees them. A
    crash loses only epochs whose requests are not done yet: the next engine trains them
    again and the upserts overwrite.

    ``conn`` is a connection, or a ``RetryingConnection`` whose retries ride out a
    restart of the server. The writer writes on a connection of its own (opened with
    the same URL and retry window), so the caller's calls never wait behind a batch
    being written or behind the writer waiting out a lost database; a connection that
    cannot reconnect (no URL) is shared instead, one transaction at a time. A write that
    fails for good (``DatabaseLostError`` after the retry window) is raised by the next
    call here. Call ``close()`` at the end: it flushes, stops the writer and closes its
    connection.

    Memory is bounded: while the states handed over and not yet written pass
    ``MAX_QUEUED_BYTES``, ``record_epoch`` waits for the writer (one state larger than
    the bound is taken when nothing else waits).
    """

    def __init__(self, conn: Any, experiment_id: int) -> None:
        self._db = retrying(conn)
        self._writer_db = self._db.another() or self._db
        self._experiment_id = experiment_id
        self._flush_timeout_s = retry_window_s() + FLUSH_MARGIN_S
        self._cond = threading.Condition()
        self._jobs: list[JobRecord] = []
        self._epochs: list[repo.EpochResult] = []
        self._writing = False
        self._queued_bytes = 0  # states handed over, until they are written
        self._closed = False
        self._error: BaseException | None = None
        self._writer = threading.Thread(target=self._write_loop, name="result-writer", daemon=True)
        self._writer.start()

    def record_jobs(self, rows: Sequence[JobRecord]) -> None:
        with self._cond:
            self._check()
            self._jobs.extend(rows)  # written with the epoch that follows them

    def record_epoch(self, trial_id: int, epoch: int, metrics: EpochMetrics, state: bytes) -> None:
        result = repo.EpochResult(
            trial_id,
            epoch,
            train_loss=metrics.train_loss,
            train_accuracy=metrics.train_accuracy,
            valid_loss=metrics.valid_loss,
            valid_accuracy=metrics.valid_accuracy,
            seconds=metrics.seconds,
            samples=metrics.samples,
            state=state,
        )
        with self._cond:
            self._wait_for_room(len(state))
            self._epochs.append(result)
            self._queued_bytes += len(state)
            self._cond.notify_all()

    def load_checkpoint(self, trial_id: int) -> tuple[int, bytes | None]:
        self.flush()
        checkpoint = self._db.run(
            lambda conn: repo.load_checkpoint(conn, self._experiment_id, trial_id)
        )
        if checkpoint is None:
            return 0, None
        return checkpoint.epoch, checkpoint.state

    def flush(self) -> None:
        """Return once every result handed over is written.

        Raises the writer's error (``DatabaseLostError`` when the database stayed away),
        or TimeoutError when the writer neither wrote nor failed within the retry window
        plus ``FLUSH_MARGIN_S``.
        """
        with self._cond:
            self._wait_while(lambda: bool(self._jobs or self._epochs or self._writing))

    def close(self) -> None:
        """Flush, then stop the writer (it stops even when the flush raised) and close
        its own connection."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._writer.join(timeout=FLUSH_MARGIN_S)
            if self._writer_db is not self._db and not self._writer.is_alive():
                self._writer_db.close()

    def _wait_for_room(self, size: int) -> None:
        """Wait (holding the condition) until ``size`` more bytes fit under the bound."""
        self._wait_while(
            lambda: bool(self._queued_bytes) and self._queued_bytes + size > MAX_QUEUED_BYTES
        )

    def _wait_while(self, busy: Callable[[], bool]) -> None:
        """Wait (holding the condition) while ``busy()`` and the writer has not failed.

        Raises the writer's error (``DatabaseLostError`` when the database stayed away),
        or TimeoutError when the writer neither wrote nor failed within the retry window
        plus ``FLUSH_MARGIN_S``.
        """
        deadline = time.monotonic() + self._flush_timeout_s
        while self._error is None and busy():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"the results of experiment {self._experiment_id} were not written "
                    f"within {self._flush_timeout_s:.0f} s"
                )
            self._cond.wait(min(left, 1.0))
        self._check()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_loop(self) -> None:
        exp_id = self._experiment_id
        while True:
            with self._cond:
                while not (self._jobs or self._epochs or self._closed):
                    self._cond.wait(1.0)
                if not (self._jobs or self._epochs):
                    return  # closed, and nothing is left
                jobs, self._jobs = self._jobs, []
                epochs, self._epochs = self._epochs, []
                self._writing = True
            try:
                write = functools.partial(
                    repo.record_epoch_results, experiment_id=exp_id, results=epochs, jobs=jobs
                )
                self._writer_db.run(write)
            except BaseException as exc:  # raised in the driver by its next call here
                with self._cond:
                    self._error, self._writing = exc, False
                    self._cond.notify_all()
                return
            with self._cond:
                self._writing = False
                self._queued_bytes -= sum(len(e.state) for e in epochs)
                self._cond.notify_all()
