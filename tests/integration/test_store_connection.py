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
