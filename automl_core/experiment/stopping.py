"""Stopping a running engine cleanly: a signal, or Airflow's ``on_kill``.

A ``StopRequest`` is only a flag: the engine's loop looks at it between steps, so a
signal never lands in the middle of a database write. ``stop_on_signals`` sets it on
SIGINT or SIGTERM (a second one raises KeyboardInterrupt, for an engine stuck in a
wait); ``EngineInterrupted`` tells the caller how many epochs are saved and how the
process should exit.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


class StopRequest:
    """Asks a running engine to stop cleanly: set by a signal handler or ``on_kill``.

    The engine looks at it between steps (every 0.25 s at most), never in the middle
    of a database write, so setting it from a signal handler is safe.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int = signal.SIGTERM) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None


class EngineInterrupted(Exception):
    """The engine stopped on ``signum`` before the search ended; the rerun resumes it.

    The experiment is ``interrupted``; ``epochs`` are recorded (and checkpointed).
    """

    def __init__(self, name: str, signum: int, epochs: int) -> None:
        self.name, self.signum, self.epochs = name, signum, epochs
        super().__init__(
            f"experiment {name!r} stopped by {signal.Signals(signum).name} after {epochs} epochs"
        )

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM ask the engine to stop cleanly.

    A second signal stops at once (KeyboardInterrupt), for an engine stuck in a wait.
    Outside the main thread (where Python cannot handle signals) nothing is installed.
    """
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.request(signum)
        log.warning(
            "%s: stopping; the jobs in flight are abandoned (send it again to stop at once)",
            signal.Signals(signum).name,
        )

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def new_processes_ignore_sigint() -> Iterator[None]:
    """Processes started inside (the local Dask workers) ignore SIGINT.

    Ctrl-C in a shell reaches its whole process group: the workers would die with a
    traceback each while the engine stops them itself. An ignored signal is the one
    disposition a child keeps across exec. A Ctrl-C in this window (the cluster's start,
    about a second) is lost; the next one stops the run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
