"""The embedded server when something around it goes wrong: a killed server left as a
zombie, a project home that is a file, a stuck lock holder, a hung initdb.

Homes come from ``temporary_home`` (world-readable, stopped and removed at the end): run
as root, the server runs as an unprivileged account that must reach them.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from automl_core.cli import main
from automl_core.config import repository_root
from automl_core.embedded_server import server as embedded
from automl_core.embedded_server import start, state
from automl_core.embedded_server.server import EmbeddedServerError
from tests.integration.test_embedded_db import temporary_home

# Starts the server, so that this helper is its parent, and reaps it only when told to.
ZOMBIE_PARENT = """
import sys
from automl_core.embedded_server import server as embedded
from automl_core.embedded_server.state import _CHILDREN
pid = embedded.ensure_server().pid
print(pid, flush=True)
sys.stdin.readline()
_CHILDREN[pid][1].wait()
"""

# Stands in for initdb: hangs, with a child in its process group as the real one has.
HUNG_INITDB = """#!/bin/sh
sleep 300 &
echo $! > child.pid
wait
"""


def raised_within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What ``call`` raised (None if nothing), failing the test if it does not return in
    ``seconds``: a hang would otherwise block the test run."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001  handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still waiting after {seconds} s")
    return outcome[0]


def test_a_killed_server_restarts_once_its_zombie_is_reaped() -> None:
    with temporary_home() as home:
        env = {k: v for k, v in os.environ.items() if k != "AUTOML_DB_URL"}
        parent = subprocess.Popen(
            [sys.executable, "-c", ZOMBIE_PARENT],
            env={**env, "AUTOML_HOME": str(home)},
            cwd=repository_root(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert parent.stdout is not None and parent.stdin is not None
            assert select.select([parent.stdout], [], [], 120)[0], "the helper never started"
            old = int(parent.stdout.readline())
            os.kill(old, signal.SIGKILL)
            assert state._wait_exit(old, 10)  # exited: a zombie, as its parent does not reap
            assert state._zombie_parent(old) == parent.pid
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(start, "START_TIMEOUT_S", 1.0)
                with pytest.raises(EmbeddedServerError) as refused:
                    embedded.ensure_server(home)
            message = str(refused.value)
            assert f"previous server (pid {old}) has exited" in message
            assert f"parent process (pid {parent.pid}) has not reaped it after 1 s" in message
            assert "AUTOML_DB_URL" in message
            stdin = parent.stdin
            reap = threading.Timer(0.5, lambda: (stdin.write("\n"), stdin.flush()))
            reap.start()
            new = embedded.ensure_server(home)  # waits for the reaping, then starts
            reap.join()
            assert new.pid != old
            assert parent.wait(timeout=30) == 0
        finally:
            parent.kill()
            parent.wait(timeout=30)


def test_a_home_that_is_a_file_is_refused_before_anything_is_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with temporary_home() as base:
        home = base / "home"
        home.write_text("a file\n")
        monkeypatch.delenv("AUTOML_DB_URL", raising=False)
        monkeypatch.setenv("AUTOML_HOME", str(home))
        for refused in (embedded.server_info, embedded.ensure_server):
            with pytest.raises(EmbeddedServerError, match="Set AUTOML_HOME to a folder"):
                refused()
        assert main(["db", "status"]) == 2
        err = capsys.readouterr().err
        assert f"{home} is a file" in err and "Set AUTOML_HOME to a folder" in err
        assert "Traceback" not in err
        assert sorted(base.iterdir()) == [home] and home.read_text() == "a file\n"


def test_a_stuck_lock_holder_becomes_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with temporary_home() as home:
        lock = embedded.layout(home).lock
        lock.parent.mkdir(parents=True)
        monkeypatch.setattr(embedded, "LOCK_TIMEOUT_S", 1.0)
        with open(lock, "a+b") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # another open file: conflicts like a process
            error = raised_within(30, lambda: embedded.ensure_server(home))
        assert isinstance(error, EmbeddedServerError)
        assert f"waited 1 s for the lock {lock}" in str(error)
        assert sorted(p.name for p in lock.parent.iterdir()) == ["lock"]


def test_a_hung_initdb_is_stopped_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with temporary_home("home") as home:
        bin_dir = home.parent / "bin"
        bin_dir.mkdir()
        (bin_dir / "initdb").write_text(HUNG_INITDB)
        (bin_dir / "initdb").chmod(0o755)
        monkeypatch.setattr(embedded, "_install_dir", lambda lay: bin_dir)
        monkeypatch.setattr(start, "INITDB_TIMEOUT_S", 1.0)
        error = raised_within(60, lambda: embedded.ensure_server(home))
        assert isinstance(error, EmbeddedServerError)
        assert "initdb did not finish within 1 s and was stopped" in str(error)
        lay = embedded.layout(home)
        assert not lay.data.exists()  # the next start begins afresh
        child = int(Path(lay.run / "child.pid").read_text())
        assert state._wait_exit(child, 10), "initdb's child outlived it"
