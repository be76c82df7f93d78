"""The engine's lease: one engine trains an experiment at a time.

An engine takes the experiment's row in ``automl.engines`` when it starts, beats every
``ENGINE_HEARTBEAT_S`` and stops it when it ends; readers tell a live engine from a gone
one by it (``repo.engine_alive``).
"""

from __future__ import annotations

import logging
import os
import socket
import time

from automl_core.experiment.stopping import EngineInterrupted, StopRequest
from automl_core.store import repository as repo
from automl_core.store.connection import RetryingConnection

log = logging.getLogger(__name__)

ENGINE_HEARTBEAT_S = 5.0
# How long a start waits for the engine that holds the lease to go: on this host, for its
# process to exit (an attempt killed a moment ago shuts its workers down first); on
# another, for its heartbeat to go silent (``repo.ENGINE_SILENT_S``).
EXIT_WAIT_S = 15.0
LEASE_POLL_S = 1.0  # between two tries to take the lease


def take_lease(db: RetryingConnection, name: str, exp_id: int, stop: StopRequest) -> int:
    """Take experiment ``name``'s engine lease (``repo.start_engine``); returns the starts.

    Waits, with the deadline above, for an engine that holds it to go.

    Raises:
        EngineBusyError: the other engine still runs at the deadline.
        EngineInterrupted: ``stop`` was requested while waiting (nothing was written).
    """
    host, pid = socket.gethostname(), os.getpid()
    started, told = time.monotonic(), False
    while True:
        try:
            return db.run(lambda c: repo.start_engine(c, exp_id, host=host, pid=pid))
        except repo.EngineBusyError as busy:
            here = busy.lease.host == host
            wait_s = EXIT_WAIT_S if here else repo.ENGINE_SILENT_S + ENGINE_HEARTBEAT_S
            if time.monotonic() - started > wait_s:
                raise
            if not told:
                log.info("%s Waiting up to %.0f s for it to go.", busy, wait_s)
                told = True
        pause_until = time.monotonic() + LEASE_POLL_S
        while time.monotonic() < pause_until:
            if stop.requested:
                assert stop.signum is not None
                raise EngineInterrupted(name, stop.signum, 0)
            time.sleep(0.25)  # a stop is answered within the engine's usual second
