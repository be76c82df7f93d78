"""Fixtures for tests against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from automl_core.store.connection import connect
from automl_core.store.migrations import migrate


@pytest.fixture
def conn(db_url: str) -> Iterator[Any]:
    """A connection to a fresh database with the automl schema (modules may override)."""
    connection = connect(db_url)
    migrate(connection)
    yield connection
    connection.close()
