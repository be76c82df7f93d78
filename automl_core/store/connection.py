"""Which database to use, and connecting to it.

``AUTOML_DB_URL`` names the database when it is set; otherwise the project's embedded
PostgreSQL server (``automl_core.embedded_server.server``) is started on first use and shared by
every process that uses the same project home. ``RetryingConnection`` is the connection
of a long-running process (the training engine): it rides out a restart of the server;
``SharedConnection`` lets the readers of one process share one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import psycopg2
import psycopg2.extensions

from automl_core.config import DB_URL_ENV, configured_db_url, project_home
from automl_core.errors import UserInputError

log = logging.getLogger(__name__)

# Applied only when the URL does not set them: a dead host should fail in seconds, not
# hang a training task, and the sessions should be recognisable in pg_stat_activity.
_CONNECT_DEFAULTS = {"connect_timeout": "10", "application_name": "automl"}

# user:password@ in a URI, and password=... in a URI query or a key=value string.
_URI_PASSWORD = re.compile(r"(://[^:/@?#\s]*:)[^@/?#\s]*@")
_PARAM_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)


def describe(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print or log.

    Works on URIs (``postgresql://user:secret@host/db``, ``...?password=secret``) and on
    key=value strings (``host=h password=secret``), and on malformed ones too, since it
    is used in the messages that report a malformed URL.
    """
    masked = _URI_PASSWORD.sub(r"\1***@", url)
    return _PARAM_PASSWORD.sub(r"\1***", masked)


def using_embedded() -> bool:
    """Whether the database in use is the embedded server (``AUTOML_DB_URL`` is unset)."""
    return configured_db_url() is None


def database_url() -> str:
    """The URL of the database to use.

    ``AUTOML_DB_URL`` when set; else the URL of the embedded server in the project home,
    which is started here if it is not running (another process may have started it: it
    is found and reused).

    Raises:
        UserInputError: the embedded server cannot be started (the message names its log).
    """
    url = configured_db_url()
    if url is not None:
        return url
    from automl_core.embedded_server.server import ensure_server  # only without AUTOML_DB_URL

    return ensure_server(project_home()).url


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """A new psycopg2 connection (autocommit off) to ``url``, default ``database_url()``.

    ``connect_timeout=10`` and ``application_name=automl`` are added unless the URL sets
    them. The caller owns the connection and closes it.

    Raises:
        UserInputError: the URL is malformed, or the server cannot be reached or refuses
            the login; the message names where the URL came from and what to check.
    """
    env_url = configured_db_url()
    if url is not None:
        source = "the database URL given"
        hint = "Check the URL."
    elif env_url is not None:
        url = env_url
        source = DB_URL_ENV
        hint = (
            f"Check that the server is running and reachable, that the host, port, user, "
            f"password and database in {DB_URL_ENV} are right, or unset {DB_URL_ENV} to use "
            f"the embedded server."
        )
    else:
        url = database_url()
        source = "the embedded server"
        from automl_core.embedded_server.server import log_path

        hint = (
            f"See the server log at {log_path(project_home())}, or set {DB_URL_ENV} "
            f"to use another server."
        )
    try:
        return _open(url, source)
    except psycopg2.OperationalError as exc:
        reason = describe(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        raise UserInputError(
            f"cannot connect to the database {describe(url)} (from {source}): {reason}. {hint}"
        ) from None


def _open(url: str, source: str) -> psycopg2.extensions.connection:
    """``psycopg2.connect`` with ``_CONNECT_DEFAULTS``; its OperationalError passes through."""
    params = _parse(url, source)
    extra: dict[str, Any] = {k: v for k, v in _CONNECT_DEFAULTS.items() if k not in params}
    return psycopg2.connect(url, **extra)


def _parse(url: str, source: str) -> dict[str, str]:
    """The parameters in ``url``; raises UserInputError naming ``source`` when malformed."""
    try:
        return psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError as exc:
        reason = describe(str(exc).strip())
        example = "postgresql://USER:PASSWORD@HOST:5432/DATABASE"
        raise UserInputError(
            f"the database URL {describe(url)} (from {source}) is malformed: {reason}. "
            f"Write it as {example} or as key=value pairs (host=... dbname=...)."
        ) from None


# --- a connection that outlives a restart of the server ------------------------------------

RETRY_ENV = "AUTOML_DB_RETRY_S"
DEFAULT_RETRY_S = 60.0
_T = TypeVar("_T")
# What a server that went away looks like: the connection broke mid-statement
# (OperationalError, AdminShutdown included) or was already closed (InterfaceError).
_LOST = (psycopg2.OperationalError, psycopg2.InterfaceError)


class DatabaseLostError(RuntimeError):
    """The database stayed unreachable for the whole retry window.

    ``experiment`` is the experiment whose work it stopped, when one is known.
    """

    def __init__(self, message: str, experiment: str | None = None) -> None:
        super().__init__(message)
        self.experiment = experiment


def retry_window_s() -> float:
    """Seconds a long run waits for a lost database: ``AUTOML_DB_RETRY_S``, default 60.

    Raises UserInputError when the variable is not a number from 0 to 3600.
    """
    text = os.environ.get(RETRY_ENV, "").strip()
    if not text:
        return DEFAULT_RETRY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise UserInputError(
            f"{RETRY_ENV} is {text!r}, but must be a number of seconds from 0 to 3600 "
            f"(unset it for {DEFAULT_RETRY_S:.0f})."
        )
    return value


class RetryingConnection:
    """One connection for a long-running process, reopened when the server goes away.

    ``run(fn)`` calls ``fn(connection)``; when the connection is lost (the server was
    restarted, stopped or killed) it reconnects to ``url`` with exponential backoff and
    calls ``fn`` again, for up to ``retry_s`` seconds from the loss, then raises
    ``DatabaseLostError``. So ``fn`` must be safe to repeat: one transaction of keyed
    upserts or guarded state changes, as every repository function is. ``reconnects``
    counts the recoveries, so a caller can re-read state whose acknowledgement was lost.
    Without ``url`` it never reconnects (a connection a caller opened and owns).
    Threads may share it: each ``run`` holds the connection for its whole call, and one
    outage has one window: a thread that finds the server still gone after another's
    window ran out tries once more and raises, instead of waiting a window of its own.
    """

    def __init__(self, url: str | None, conn: Any = None, *, retry_s: float | None = None) -> None:
        self._url = url
        self._conn = conn if conn is not None else connect(url)
        self._retry_s = retry_window_s() if retry_s is None else retry_s
        self.reconnects = 0
        self._lock = threading.RLock()
        self._lost_at: float | None = None  # when the current outage began (monotonic)
        self._closed = False

    @property
    def conn(self) -> Any:
        return self._conn

    def run(self, fn: Callable[[Any], _T]) -> _T:
        with self._lock:
            try:
                return fn(self._conn)
            except _LOST as exc:
                if self._url is None or self._closed:
                    raise
                # A rollback on the dead connection raises "connection already closed"
                # over the error that says why; report that one.
                lost = exc.__context__ if isinstance(exc.__context__, _LOST) else exc
            return self._recover(fn, lost)

    def close(self) -> None:
        """Close the connection (after a call in flight); later calls are not retried."""
        with self._lock:
            self._closed = True
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()

    def another(self) -> RetryingConnection | None:
        """A second connection to the same database with the same retry window, for a
        thread that should not wait behind this one's calls; None when this one cannot
        reconnect (its caller owns it, and the URL to open another is not known)."""
        if self._url is None:
            return None
        return RetryingConnection(self._url, retry_s=self._retry_s)

    def _recover(self, fn: Callable[[Any], _T], lost: BaseException) -> _T:
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception_type,
            stop_before_delay,
            wait_exponential,
        )

        log.warning(
            "lost the database connection (%s); retrying for up to %.0f s",
            _first_line(lost),
            self._retry_s,
        )
        started = time.monotonic()
        if self._lost_at is None:
            self._lost_at = started
        retrying = Retrying(
            # Never sleeps past the window: the run ends at most retry_s after the loss.
            stop=stop_before_delay(max(0.0, self._retry_s - (started - self._lost_at))),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception_type(_LOST),
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._reopen()
                    result = fn(self._conn)
        except RetryError as exc:
            last = exc.last_attempt.exception() or lost
            raise DatabaseLostError(
                f"the database {describe(str(self._url))} was unreachable for "
                f"{time.monotonic() - self._lost_at:.0f} s ({RETRY_ENV}={self._retry_s:g}); "
                f"last error: {_first_line(last)}"
            ) from None
        self.reconnects += 1
        self._lost_at = None
        log.warning("reconnected to the database after %.1f s", time.monotonic() - started)
        return result

    def _reopen(self) -> None:
        with contextlib.suppress(psycopg2.Error):
            self._conn.close()
        self._conn = _open(str(self._url), "the database URL given")


class SharedConnection:
    """A handle on the one :class:`RetryingConnection` of this process to ``url``.

    For many small readers that wait side by side, such as the training tasks of DAG runs
    waiting in Airflow's triggerer (up to one per group, a hundred groups a DAG): they hold
    one of the server's connections (``max_connections``, 100 by default, is shared with
    the engines and the workers) instead of one each, and ride out a lost server for
    ``AUTOML_DB_RETRY_S`` as the engine does. Each ``run`` holds the connection for its
    call, so keep the calls short. The connection closes with its last handle.

    Raises psycopg2.OperationalError (through :func:`connect`) when the first handle
    cannot connect.
    """

    _lock = threading.Lock()
    _open: ClassVar[dict[str, tuple[RetryingConnection, int]]] = {}

    def __init__(self, url: str) -> None:
        with SharedConnection._lock:
            db, holders = self._open.get(url) or (RetryingConnection(url), 0)
            self._open[url] = (db, holders + 1)
        self._url: str | None = url
        self._db = db

    def run(self, fn: Callable[[Any], _T]) -> _T:
        """``fn(connection)``, as :meth:`RetryingConnection.run`."""
        return self._db.run(fn)

    def close(self) -> None:
        """Let go of the connection (a second call does nothing)."""
        url, self._url = self._url, None
        if url is None:
            return
        with SharedConnection._lock:
            db, holders = self._open[url]
            if holders > 1:
                self._open[url] = (db, holders - 1)
                return
            del self._open[url]
        db.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return describe(text.splitlines()[0]) if text else type(exc).__name__
