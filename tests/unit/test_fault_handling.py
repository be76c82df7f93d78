"""The pieces of fault handling that need no server: retries, liveness, signals, messages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import psycopg2
import pytest

from automl_core.cli import EXIT_DATABASE_LOST, _stopped, resume_command
from automl_core.errors import UserInputError
from automl_core.experiment.stopping import EngineInterrupted, stop_on_signals
from automl_core.store import connection
from automl_core.store.connection import DatabaseLostError, RetryingConnection, retry_window_s
from automl_core.store.repository import EngineLease, engine_alive


class FakeConn:
    def __init__(self, broken: bool) -> None:
        self.broken = broken
        self.closed = False

    def close(self) -> None:
        self.closed = True


def query(conn: FakeConn) -> str:
    if conn.broken:
        raise psycopg2.OperationalError("server closed the connection unexpectedly")
    return "rows"


def test_a_lost_connection_is_reopened_and_the_call_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(connection, "_open", lambda url, source: FakeConn(broken=False))
    first = FakeConn(broken=True)
    db = RetryingConnection("postgresql://h/db", first, retry_s=5)
    assert db.run(query) == "rows"
    assert db.reconnects == 1 and first.closed and db.conn is not first


def test_a_server_that_stays_away_ends_in_database_lost_after_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(url: str, source: str) -> FakeConn:
        raise psycopg2.OperationalError("connection refused\n\tIs the server running?")

    monkeypatch.setattr(connection, "_open", refuse)
    db = RetryingConnection("postgresql://u:secret@h/db", FakeConn(broken=True), retry_s=0.3)
    with pytest.raises(DatabaseLostError, match="was unreachable for 0 s") as e:
        db.run(query)
    assert str(e.value).endswith("last error: connection refused")
    assert "secret" not in str(e.value)


def test_without_a_url_a_lost_connection_is_the_callers_error() -> None:
    with pytest.raises(psycopg2.OperationalError):
        RetryingConnection(None, FakeConn(broken=True)).run(query)


def test_the_retry_window_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOML_DB_RETRY_S", raising=False)
    assert retry_window_s() == 60
    monkeypatch.setenv("AUTOML_DB_RETRY_S", "2.5")
    assert retry_window_s() == 2.5
    for bad in ("soon", "-1", "99999"):
        monkeypatch.setenv("AUTOML_DB_RETRY_S", bad)
        with pytest.raises(UserInputError, match="AUTOML_DB_RETRY_S is .* from 0 to 3600"):
            retry_window_s()


def lease(host: str, pid: int, *, heartbeat_age_s: float = 1.0, started_age_s: float = 0.0):
    return EngineLease(host, pid, 1, heartbeat_age_s, False, started_age_s)


def test_an_engine_on_this_host_is_alive_while_its_process_is() -> None:
    here = socket.gethostname()
    assert engine_alive(lease(here, os.getpid()))
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert not engine_alive(lease(here, int(done.stdout)))
    # A pid younger than the lease is another process that reuses the number.
    assert not engine_alive(lease(here, os.getpid(), started_age_s=10**7))


def test_an_engine_on_another_host_is_alive_while_it_beats() -> None:
    assert engine_alive(lease("elsewhere", 1, heartbeat_age_s=10))
    assert not engine_alive(lease("elsewhere", 1, heartbeat_age_s=120))


def test_a_signal_asks_to_stop_and_a_second_one_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_resume_command_names_the_experiment() -> None:
    assert resume_command(["run", "--data", "d d"], "x") == "automl run --data 'd d' --name x"
    assert resume_command(["run", "--name", "old"], "new") == "automl run --name new"
    assert resume_command(["run", "--name=old"], "new") == "automl run --name=new"


def test_a_stop_and_a_lost_database_end_in_one_line_and_their_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _stopped(EngineInterrupted("x", signal.SIGTERM, 7), ["run", "--name", "x"]) == 143
    assert _stopped(EngineInterrupted("x", signal.SIGINT, 7), ["run", "--name", "x"]) == 130
    lost = DatabaseLostError("the database h was unreachable for 60 s", experiment="x")
    assert _stopped(lost, ["run"]) == EXIT_DATABASE_LOST
    assert _stopped(ValueError("a bug"), ["run"]) is None
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "interrupted: experiment 'x' stopped by SIGTERM after 7 epochs; "
        "resume with: automl run --name x",
        "interrupted: experiment 'x' stopped by SIGINT after 7 epochs; "
        "resume with: automl run --name x",
        "error: the database h was unreachable for 60 s; experiment 'x' keeps every epoch "
        "it saved: once the database is back, resume with: automl run --name x",
    ]
