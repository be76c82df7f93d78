"""A local worker's log, without the error Dask logs when the worker closes itself
in the middle of a heartbeat.

``Worker.close`` (distributed 2025-2026) stops the heartbeat's periodic callback but
not a heartbeat already waiting for the scheduler's answer, then closes its connection
pool: that heartbeat fails with ``CommClosedError`` and ``Worker.heartbeat`` logs
"Failed to communicate with scheduler during heartbeat." at ERROR, with a traceback.
Nothing failed: the worker was closing. On a busy machine a heartbeat is often in
flight when a run ends (a Ctrl-C printed that traceback under the run's clean
message). Other projects see the same at shutdown (dask/distributed's heartbeat
handling, PR 7163; nv-morpheus/Morpheus issue 1990).

The same message from a worker that is running (the scheduler really is unreachable)
is logged as before.

Likewise at a Ctrl-C, when the workers close one after another: a worker sending a
model state to a peer that has just closed logs "failed during get data" with the
comm's traceback (a fault test saw it under the run's clean message). The requester's
side is what matters (the engine reports a lost worker itself), so that record keeps
its one line and loses the traceback.
"""

from __future__ import annotations

import logging

HEARTBEAT_FAILED = "Failed to communicate with scheduler during heartbeat"
GET_DATA_FAILED = "failed during get data"
WORKER_LOGGER = "distributed.worker"


class HeartbeatAtCloseFilter(logging.Filter):
    """Drops the heartbeat failure record while every worker of this process is closing
    or closed (``Status.closing``, ``Status.closed``); passes a failed data transfer's
    record without its traceback, and every other record as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The raw message: a filter runs outside the handlers' error handling.
        if isinstance(record.msg, str) and record.msg.startswith(GET_DATA_FAILED):
            record.exc_info, record.exc_text = None, None  # one line: a peer hung up
            return True
        if not (isinstance(record.msg, str) and record.msg.startswith(HEARTBEAT_FAILED)):
            return True
        from distributed import Worker
        from distributed.core import Status

        workers = list(Worker._instances)
        # Not closing_gracefully: a retiring worker still talks to its scheduler.
        ending = (Status.closing, Status.closed)
        return not workers or not all(w.status in ending for w in workers)


def install() -> None:
    """Put the filter on Dask's worker logger (once: a second call adds nothing)."""
    logger = logging.getLogger(WORKER_LOGGER)
    if not any(isinstance(f, HeartbeatAtCloseFilter) for f in logger.filters):
        logger.addFilter(HeartbeatAtCloseFilter())
