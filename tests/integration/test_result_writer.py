"""The engine's result writer (``DatabaseSink``): epochs handed over are written behind
the runner's back, in batches, and are in the database whenever a reader needs them."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg2
import pytest

from automl_core.experiment.sink import DatabaseSink
from automl_core.mop.results import EpochMetrics
from automl_core.mop.types import JobRecord
from automl_core.store import repository as repo
from automl_core.store.connection import RetryingConnection, connect

SPEC = {"space": {"lr": [0.1]}, "search": {"method": "grid"}}


@pytest.fixture
def exp_id(conn: Any) -> int:
    return repo.create_experiment(
        conn, name="writer", method="grid", dataset="iris", spec=SPEC, seed=0
    ).id


def metrics(acc: float) -> EpochMetrics:
    return EpochMetrics(0.5, acc, 0.6, acc, 0.1, 100)


def hand_over(sink: DatabaseSink, trial: int, epoch: int, acc: float) -> None:
    sink.record_jobs([JobRecord(trial, epoch, p, "train", "w", 1.0, 2.0) for p in (0, 1)])
    sink.record_epoch(trial, epoch, metrics(acc), f"state {trial}/{epoch}".encode())


def test_what_was_handed_over_is_in_the_database_after_a_flush(conn: Any, exp_id: int) -> None:
    sink = DatabaseSink(conn, exp_id)
    try:
        for epoch, acc in ((1, 0.5), (2, 0.7), (3, 0.6)):
            for trial in range(4):
                hand_over(sink, trial, epoch, acc)
        sink.flush()
        rows = repo.epochs(conn, exp_id)
        assert [(r.trial_id, r.epoch) for r in rows] == [
            (t, e) for t in range(4) for e in (1, 2, 3)
        ]
        assert len(repo.jobs(conn, exp_id)) == 4 * 3 * 2
        # The latest checkpoint is epoch 3's; the best state is epoch 2's (accuracy 0.7).
        assert sink.load_checkpoint(2) == (3, b"state 2/3")
        best = repo.load_checkpoint(conn, exp_id, 2, best=True)
        assert best is not None and (best.epoch, best.state) == (2, b"state 2/2")
    finally:
        sink.close()


def test_reading_a_checkpoint_waits_for_the_writer(
    conn: Any, exp_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = repo.record_epoch_results

    def slow_write(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.3)  # the writer is still busy when the checkpoint is asked for
        write(*args, **kwargs)

    monkeypatch.setattr(repo, "record_epoch_results", slow_write)
    sink = DatabaseSink(conn, exp_id)
    try:
        hand_over(sink, 7, 1, 0.5)
        hand_over(sink, 7, 2, 0.6)
        assert sink.load_checkpoint(7) == (2, b"state 7/2")  # no flush needed first
    finally:
        sink.close()


def test_a_slow_database_holds_the_runner_back_instead_of_filling_memory(
    conn: Any, exp_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from automl_core.experiment import sink as sink_module

    monkeypatch.setattr(sink_module, "MAX_QUEUED_BYTES", 20)  # about two states
    write = repo.record_epoch_results
    gate = threading.Event()
    written: list[int] = []

    def gated_write(*args: Any, **kwargs: Any) -> None:
        assert gate.wait(30), "the test never opened the gate"
        write(*args, **kwargs)
        written.append(len(kwargs["results"]))

    monkeypatch.setattr(repo, "record_epoch_results", gated_write)
    sink = DatabaseSink(conn, exp_id)
    handed: list[int] = []

    def runner() -> None:  # hands over 6 states of 9-10 bytes
        for epoch in range(1, 7):
            hand_over(sink, 1, epoch, 0.5)
            handed.append(epoch)

    thread = threading.Thread(target=runner, daemon=True)
    try:
        thread.start()
        deadline = time.monotonic() + 10
        while len(handed) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        thread.join(0.5)
        # The writer is stuck on the first state; the second fits, the third waits.
        assert thread.is_alive() and handed == [1, 2]
        gate.set()
        thread.join(30)
        assert not thread.is_alive() and handed == [1, 2, 3, 4, 5, 6]
        sink.flush()
        assert sum(written) == 6 and sink.load_checkpoint(1) == (6, b"state 1/6")
    finally:
        gate.set()
        sink.close()


def test_the_writer_does_not_wait_behind_the_callers_calls(db_url: str, exp_id: int) -> None:
    """The writer has a connection of its own: while a call of the caller's holds its
    connection (held at a gate here; a lost database being waited out, in a run), the
    epochs handed over are still written."""
    db = RetryingConnection(db_url)
    sink = DatabaseSink(db, exp_id)
    gate, inside = threading.Event(), threading.Event()

    def long_call(c: Any) -> None:
        inside.set()
        gate.wait(30)

    caller = threading.Thread(target=db.run, args=(long_call,), daemon=True)
    reader = connect(db_url)
    try:
        caller.start()
        assert inside.wait(10)
        hand_over(sink, 0, 1, 0.5)
        deadline = time.monotonic() + 10
        while not repo.epochs(reader, exp_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert caller.is_alive(), "the caller's call ended before the check"
        assert [(r.trial_id, r.epoch) for r in repo.epochs(reader, exp_id)] == [(0, 1)]
    finally:
        gate.set()
        caller.join(10)
        sink.close()
        db.close()
        reader.close()
    assert sink._writer_db is not db


def test_a_write_that_fails_is_raised_by_the_next_call(db_url: str, exp_id: int) -> None:
    own = connect(db_url)
    sink = DatabaseSink(RetryingConnection(None, own), exp_id)  # never reconnects
    own.close()  # the writer's next transaction fails
    hand_over(sink, 0, 1, 0.5)
    with pytest.raises(psycopg2.InterfaceError):
        sink.flush()
    with pytest.raises(psycopg2.InterfaceError):
        hand_over(sink, 0, 2, 0.6)
    with pytest.raises(psycopg2.InterfaceError):
        sink.close()
    assert not sink._writer.is_alive()  # the writer stopped at its error


def test_close_writes_what_is_left_and_stops_the_writer(conn: Any, exp_id: int) -> None:
    sink = DatabaseSink(conn, exp_id)
    hand_over(sink, 3, 1, 0.4)
    sink.close()
    assert not sink._writer.is_alive()
    assert [(r.trial_id, r.epoch) for r in repo.epochs(conn, exp_id)] == [(3, 1)]
