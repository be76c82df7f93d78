"""A worker that closes while a heartbeat waits for the scheduler logs no traceback
(the race is made on purpose: the scheduler holds its answer until the worker closed);
a running one whose heartbeat fails still says so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from automl_core.executors import worker_logging
from automl_core.executors.worker_logging import HEARTBEAT_FAILED, WORKER_LOGGER

DEADLINE_S = 30.0


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def worker_log() -> Iterator[_Records]:
    logger = logging.getLogger(WORKER_LOGGER)
    handler, filters, level = _Records(), list(logger.filters), logger.level
    # Start without the filter (another test, or the preload, may have installed it).
    logger.filters[:] = [
        f for f in filters if not isinstance(f, worker_logging.HeartbeatAtCloseFilter)
    ]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.filters[:] = filters
        logger.setLevel(level)


async def _close_during_a_heartbeat() -> None:
    """Start a worker's heartbeat that the scheduler answers only after the worker has
    closed, and close the worker once the scheduler holds it."""
    from distributed import Scheduler, Worker

    async with Scheduler(host="127.0.0.1", dashboard_address=":0") as scheduler:
        answer = scheduler.handlers["heartbeat_worker"]
        held, release = asyncio.Event(), asyncio.Event()

        async def late(*args: Any, **kwargs: Any) -> Any:
            held.set()
            await release.wait()
            return answer(*args, **kwargs)

        scheduler.handlers["heartbeat_worker"] = late
        worker = await Worker(scheduler.address, nthreads=1, host="127.0.0.1")
        try:
            beat = asyncio.create_task(worker.heartbeat())
            await asyncio.wait_for(held.wait(), DEADLINE_S)  # a heartbeat is in flight
            await asyncio.wait_for(worker.close(), DEADLINE_S)
            await asyncio.wait_for(beat, DEADLINE_S)
        finally:
            release.set()
            await asyncio.wait_for(worker.close(), DEADLINE_S)


def _failures(log: _Records) -> list[logging.LogRecord]:
    return [r for r in log.records if r.getMessage().startswith(HEARTBEAT_FAILED)]


@pytest.mark.timeout(120)
def test_a_worker_closed_during_a_heartbeat_logs_no_traceback(worker_log: _Records) -> None:
    asyncio.run(_close_during_a_heartbeat())
    unfiltered = _failures(worker_log)
    # The race is real: without the filter Dask logs the failure with its traceback.
    assert unfiltered and unfiltered[0].exc_info, [r.getMessage() for r in worker_log.records]

    worker_log.records.clear()
    worker_logging.install()
    worker_logging.install()  # twice: still one filter
    assert (
        sum(
            isinstance(f, worker_logging.HeartbeatAtCloseFilter)
            for f in logging.getLogger(WORKER_LOGGER).filters
        )
        == 1
    )
    asyncio.run(_close_during_a_heartbeat())
    assert not _failures(worker_log)


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord(WORKER_LOGGER, logging.ERROR, __file__, 1, message, None, None)


async def _judged_while_running_and_after_close() -> list[tuple[bool, bool]]:
    """(heartbeat failure passes, another error passes) while a worker runs, then after
    it closed."""
    from distributed import Scheduler, Worker

    keep = worker_logging.HeartbeatAtCloseFilter()
    failure, other = _record(HEARTBEAT_FAILED + "."), _record("Compute Failed")
    async with Scheduler(host="127.0.0.1", dashboard_address=":0") as scheduler:
        worker = await Worker(scheduler.address, nthreads=1, host="127.0.0.1")
        running = (keep.filter(failure), keep.filter(other))
        await asyncio.wait_for(worker.close(), 30)
        closed = (keep.filter(failure), keep.filter(other))
    return [running, closed]


@pytest.mark.timeout(120)
def test_only_a_closing_worker_drops_the_heartbeat_failure() -> None:
    running, closed = asyncio.run(_judged_while_running_and_after_close())
    assert running == (True, True)  # the scheduler really is unreachable: said
    assert closed == (False, True)


def test_a_transfer_to_a_peer_that_hung_up_is_one_line() -> None:
    # At a Ctrl-C the workers close one after another: one serving a model state to a
    # peer that closed logged the comm's traceback under the run's clean message.
    import sys

    try:
        raise OSError("Stream is closed")
    except OSError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        WORKER_LOGGER, logging.ERROR, __file__, 1, "failed during get data with %s -> %s",
        ("tcp://a", "tcp://b"), exc_info,
    )  # fmt: skip
    assert worker_logging.HeartbeatAtCloseFilter().filter(record)
    assert record.exc_info is None
    assert logging.Formatter().format(record) == "failed during get data with tcp://a -> tcp://b"
