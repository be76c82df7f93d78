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

from automl_core.experiment.stopping import StopRequest
from automl_core.store import repository as repo
from automl_core.store.connection import RetryingConnection

log = logging.getLogger(__name__)

ENGINE_HEARTBEAT_S = 5.0


def take_lease(db: RetryingConnection, exp_id: int, stop: StopRequest) -> int:
    """Start the engine's lease (``repo.start_engine``); returns the engine starts.

    An engine on another host that holds it is waited for until its heartbeat has been
    silent for ``ENGINE_SILENT_S`` (a retry on another host may start before the killed
    attempt is seen as gone); one on this host is alive for sure. Raises EngineBusyError.
    """
    host, pid = socket.gethostname(), os.getpid()
    deadline = time.monotonic() + repo.ENGINE_SILENT_S + ENGINE_HEARTBEAT_S
    while True:
        try:
            return db.run(lambda c: repo.start_engine(c, exp_id, host=host, pid=pid))
        except repo.EngineBusyError as busy:
            if busy.lease.host == host or time.monotonic() > deadline or stop.requested:
                raise
            log.info("%s Waiting up to %.0f s for it to go silent.", busy, repo.ENGINE_SILENT_S)
            pause_until = time.monotonic() + ENGINE_HEARTBEAT_S
            while time.monotonic() < pause_until and not stop.requested:
                time.sleep(0.25)  # a stop is answered within the engine's usual second
