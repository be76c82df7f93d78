"""Shared fixtures.

Tests are tiered by folder (unit, integration, airflow, e2e); the tier marker is
applied here so ``pytest -m unit`` selects the pure tests.

Integration tests use the PostgreSQL server named by ``AUTOML_TEST_PG_URL`` (default: the
local server on 127.0.0.1:5432, user postgres). Each test run creates fresh databases and
drops them afterwards, so nothing an earlier run left can leak in.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ADMIN_URL = os.environ.get("AUTOML_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TIERS = ("unit", "integration", "airflow", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


def _with_database(admin_url: str, name: str) -> str:
    """The admin URL with its database name replaced."""
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def make_database() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty databases on the test server; all are dropped at the end."""
    import psycopg2
    from psycopg2 import sql

    created: list[str] = []

    def make() -> str:
        name = f"automl_test_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(ADMIN_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.close()
        created.append(name)
        return _with_database(ADMIN_URL, name)

    yield make

    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in created:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    conn.close()


@pytest.fixture
def db_url(make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database for one test, also exported as AUTOML_DB_URL."""
    url = make_database()
    monkeypatch.setenv("AUTOML_DB_URL", url)
    return url


@pytest.fixture(scope="session")
def digits_url(make_database: Callable[[], str]) -> str:
    """A database holding the digits data, prepared into 2 partitions (shared, read-mostly).

    Tests that train write only rows keyed by their own experiment name.
    """
    from automl_core.cli import main

    url = make_database()
    old = os.environ.get("AUTOML_DB_URL")
    os.environ["AUTOML_DB_URL"] = url
    try:
        assert main(["db", "init"]) == 0
        assert main(["data", "load", "digits", "--table", "digits"]) == 0
        assert main(["data", "prepare", "digits", "--partitions", "2", "--seed", "0"]) == 0
    finally:
        if old is None:
            os.environ.pop("AUTOML_DB_URL", None)
        else:
            os.environ["AUTOML_DB_URL"] = old
    return url


# --- S3 on loopback (moto), for the export tests of every tier ---------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Dummy credentials and the moto endpoint in the environment, as a deployment sets them."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3_endpoint
