"""connect() and database_url() against the test PostgreSQL server."""

from __future__ import annotations

import pytest

from automl_core.errors import UserInputError
from automl_core.store import connect, database_url


def test_connect_uses_automl_db_url(db_url: str) -> None:
    assert database_url() == db_url
    conn = connect()
    try:
        assert conn.autocommit is False
        with conn.cursor() as cur:
            cur.execute("SELECT current_database(), current_setting('application_name')")
            name, app = cur.fetchone()
        assert db_url.endswith("/" + name)
        assert app == "automl"
    finally:
        conn.close()


def test_settings_in_the_url_win_over_the_defaults(db_url: str) -> None:
    conn = connect(db_url + "?application_name=mine")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('application_name')")
            assert cur.fetchone()[0] == "mine"
    finally:
        conn.close()


def test_an_unreachable_server_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_DB_URL", "postgresql://postgres:hunter2@127.0.0.1:1/x")
    with pytest.raises(UserInputError) as info:
        connect()
    message = str(info.value)
    assert "from AUTOML_DB_URL" in message and "server is running" in message
    assert "unset AUTOML_DB_URL" in message
    assert "hunter2" not in message and "postgres:***@127.0.0.1:1" in message


def test_a_missing_database_is_a_user_error(db_url: str) -> None:
    missing = db_url.rsplit("/", 1)[0] + "/automl_no_such_db"
    with pytest.raises(UserInputError, match='database "automl_no_such_db" does not exist'):
        connect(missing)


def test_one_outage_gives_every_thread_of_a_shared_connection_one_window() -> None:
    # The waiting training tasks of a triggerer share one connection. Each thread that
    # found the server gone waited a whole window of its own, one after the other: the
    # k-th failed after k windows (100 tasks: 100 minutes instead of one).
    import socket
    import threading
    import time

    import psycopg2

    from automl_core.store.connection import DatabaseLostError, RetryingConnection

    with socket.socket() as probe:  # a port where nothing listens: reconnects are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Gone:
        def cursor(self) -> None:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")

        def close(self) -> None:
            pass

    db = RetryingConnection(f"postgresql://postgres@127.0.0.1:{port}/x", Gone(), retry_s=1.0)
    failed_after: list[float] = []
    started = time.monotonic()

    def read() -> None:
        with pytest.raises(DatabaseLostError):
            db.run(lambda conn: conn.cursor())
        failed_after.append(time.monotonic() - started)

    readers = [threading.Thread(target=read) for _ in range(6)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=30)
    assert len(failed_after) == 6
    assert max(failed_after) < 2.0, failed_after  # one window (1 s), not six in a row


def test_handles_on_one_url_share_one_server_connection_until_the_last_closes(
    db_url: str,
) -> None:
    # The triggerer's waiting tasks each hold a handle: a hundred of them must not hold a
    # hundred of the server's connections, and one task ending must not close the others'.
    from automl_core.store.connection import SharedConnection

    def backend(conn: object) -> int:
        with conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT pg_backend_pid()")
            pid = int(cur.fetchone()[0])
        conn.rollback()  # type: ignore[attr-defined]
        return pid

    first, second = SharedConnection(db_url), SharedConnection(db_url)
    try:
        pid = first.run(backend)
        assert second.run(backend) == pid
        first.close()
        first.close()  # a second close must not take the other handle's share
        assert second.run(backend) == pid
    finally:
        first.close()
        second.close()
    # The last handle closed the connection: its server process ends.
    import time

    import psycopg2

    probe = psycopg2.connect(db_url)
    try:
        probe.autocommit = True
        deadline = time.monotonic() + 10
        with probe.cursor() as cur:
            while True:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                if cur.fetchone()[0] == 0:
                    break
                assert time.monotonic() < deadline, "the shared connection stayed open"
                time.sleep(0.05)
    finally:
        probe.close()
