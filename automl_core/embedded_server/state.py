"""The embedded server's file layout, its error type, and its state in postmaster.pid."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from automl_core.config import DB_URL_ENV, HOME_ENV
from automl_core.errors import UserInputError

DATABASE = "automl"
SUPERUSER = "postgres"

# Servers this process started, so that it can reap them (a dead child is otherwise a
# zombie that still looks alive). Keyed by pid; the owner pid guards against a fork.
_CHILDREN: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}


class EmbeddedServerError(UserInputError):
    """The embedded server cannot be set up or started; the message says what to do."""


@dataclass(frozen=True)
class Layout:
    """Where the embedded server's files live (all under ``<project home>/pg``)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def password(self) -> Path:
        return self.root / "password"


@dataclass(frozen=True)
class ServerInfo:
    """A running embedded server."""

    pid: int
    port: int
    socket_dir: Path | None  # None when listening on TCP
    host: str | None  # the TCP address, None when listening on the socket only
    password: str | None  # for TCP only
    data_dir: Path
    log: Path

    def url_for(self, database: str) -> str:
        """A libpq URL of ``database`` on this server."""
        if self.socket_dir is not None:
            host = quote(str(self.socket_dir), safe="/")
            return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={self.port}"
        secret = quote(self.password or "", safe="")
        return f"postgresql://{SUPERUSER}:{secret}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The URL of the ``automl`` database."""
        return self.url_for(DATABASE)


# --- finding a running server ------------------------------------------------------------


@dataclass(frozen=True)
class _PidFile:
    pid: int
    port: int
    socket_dir: str
    listen: str
    status: str


def _pid_file(lay: Layout) -> _PidFile | None:
    """The fields of ``data/postmaster.pid`` (see PostgreSQL's pidfile.h), or None."""
    try:
        lines = (lay.data / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise _not_a_folder(lay) from None
    except PermissionError:
        raise EmbeddedServerError(
            f"the embedded database in {lay.data} belongs to another account "
            f"(uid {lay.data.stat().st_uid}). Run as that account, set {HOME_ENV} to "
            f"another folder, or set {DB_URL_ENV}."
        ) from None
    if len(lines) < 8 or not lines[0].strip().isdigit():
        return None  # being written right now: treat as not ready
    return _PidFile(
        pid=int(lines[0]),
        port=int(lines[3]),
        socket_dir=lines[4].strip(),
        listen=lines[5].strip(),
        status=lines[7].strip(),
    )


def _running(lay: Layout) -> ServerInfo | None:
    fields = _pid_file(lay)
    if fields is None or fields.status != "ready" or not _alive(fields.pid):
        return None
    if fields.socket_dir:
        socket_dir = Path(fields.socket_dir)
        return ServerInfo(fields.pid, fields.port, socket_dir, None, None, lay.data, lay.log)
    try:
        password = lay.password.read_text().strip()
    except FileNotFoundError:
        raise EmbeddedServerError(
            f"the embedded server listens on TCP but its password file {lay.password} is "
            f"missing. Stop it (automl db stop) and delete {lay.root} to start afresh, or "
            f"set {DB_URL_ENV}."
        ) from None
    host = fields.listen.split(",")[0].strip() or "127.0.0.1"
    return ServerInfo(fields.pid, fields.port, None, host, password, lay.data, lay.log)


def _not_a_folder(lay: Layout) -> EmbeddedServerError:
    """The error for a file standing where the project home or its ``pg`` folders go."""
    blocker = next(
        (p for p in (*reversed(lay.data.parents), lay.data) if p.exists() and not p.is_dir()),
        lay.data,
    )
    return EmbeddedServerError(
        f"{blocker} is a file, but the embedded server keeps its files in folders under the "
        f"project home {lay.root.parent}. Set {HOME_ENV} to a folder (new or existing), or "
        f"set {DB_URL_ENV} to use another server."
    )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not reaped yet) counts as dead. Reaps the
    servers this process started."""
    owned = _CHILDREN.get(pid)
    if owned is not None and owned[0] == os.getpid():
        return owned[1].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but belongs to another account
    # A process that exited but was not reaped by its parent yet still answers kill(0).
    state = _proc_state(pid)
    return state is None or state[0] != "Z"


def _zombie_parent(pid: int) -> int | None:
    """The parent of ``pid`` when ``pid`` has exited but is not reaped yet, else None."""
    if _alive(pid):
        return None
    state = _proc_state(pid)
    return state[1] if state is not None and state[0] == "Z" else None


def _proc_state(pid: int) -> tuple[str, int] | None:
    """The state letter and the parent pid of ``pid`` (from /proc), or None when gone."""
    try:
        # The command name in parentheses may hold spaces and ")": split after the last.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
