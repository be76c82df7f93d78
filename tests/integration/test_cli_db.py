"""``automl db init|status|stop`` through the real command entry point."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from automl_core.cli import main
from automl_core.embedded_server import server as embedded
from automl_core.store import LATEST_VERSION


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_and_status_with_automl_db_url(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "db", "status")
    assert code == 0
    assert "(from AUTOML_DB_URL)" in out
    assert "engine:   PostgreSQL" in out
    assert "schema:   not initialised; run automl db init" in out

    code, out, _ = run(capsys, "db", "init")
    assert code == 0
    assert "applied migrations: 1 (initial schema)" in out
    assert f"schema now at version {LATEST_VERSION}" in out

    code, out, _ = run(capsys, "db", "init")
    assert code == 0
    assert f"already at version {LATEST_VERSION}" in out
    assert "applied" not in out

    for _ in range(2):
        code, out, _ = run(capsys, "db", "status")
        assert code == 0
        assert f"schema:   version {LATEST_VERSION} (up to date)" in out
        assert "server:   PostgreSQL " in out


def test_status_masks_the_password(
    make_database: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parts = urlsplit(make_database())
    secret = parts.password or "hunter2"  # the test server trusts local logins
    netloc = f"{parts.username}:{secret}@{parts.hostname}:{parts.port or 5432}"
    monkeypatch.setenv("AUTOML_DB_URL", urlunsplit(parts._replace(netloc=netloc)))
    code, out, _ = run(capsys, "db", "status")
    assert code == 0
    assert secret not in out and f"{parts.username}:***@" in out


def test_a_bad_url_exits_2_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOML_DB_URL", "postgresql://postgres@127.0.0.1:1/nothing")
    for action in ("init", "status"):
        code, out, err = run(capsys, "db", action)
        assert code == 2 and out == ""
        assert err.startswith("error: cannot connect") and "AUTOML_DB_URL" in err


def test_stop_with_automl_db_url_does_nothing(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "db", "stop")
    assert code == 0 and "nothing to stop" in out


def test_the_embedded_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # tempfile rather than tmp_path: see tests/integration/test_embedded_db.py.
    home = Path(tempfile.mkdtemp(prefix="automl-cli-"))
    home.chmod(0o755)
    monkeypatch.delenv("AUTOML_DB_URL", raising=False)
    monkeypatch.setenv("AUTOML_HOME", str(home))
    try:
        code, out, _ = run(capsys, "db", "init")
        assert code == 0
        assert f"(embedded server in {home}, log {home / 'pg' / 'server.log'})" in out
        assert "applied migrations: 1 (initial schema)" in out

        code, out, _ = run(capsys, "db", "status")
        assert code == 0
        assert "server:   PostgreSQL 18" in out and "engine:   PostgreSQL" in out
        assert f"schema:   version {LATEST_VERSION} (up to date)" in out

        code, out, _ = run(capsys, "db", "stop")
        assert code == 0 and f"stopped the embedded server in {home}" in out
        code, out, _ = run(capsys, "db", "stop")
        assert code == 0 and "is not running" in out
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)
