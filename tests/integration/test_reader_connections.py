"""The Python readers name a wrong database or a wrong argument, as the CLI does.

A review called `report.leaderboard` from a notebook on a database without the automl
schema (psycopg2's UndefinedTable) and with a URL instead of a connection (a TypeError
about context managers).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from automl_core.errors import UserInputError
from automl_core.report import leaderboard
from automl_core.store.connection import connect


def test_a_database_without_the_schema_and_a_url_are_named(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    conn = connect(url)
    try:
        with pytest.raises(UserInputError, match=r"no experiment named 'hb'.*no automl schema"):
            leaderboard(conn, "hb")
        with conn.cursor() as cur:  # the connection is still usable: nothing was aborted
            cur.execute("SELECT 1")
    finally:
        conn.close()
    with pytest.raises(UserInputError, match=r"Pass a psycopg2 connection, not str.*connect"):
        leaderboard(url, "hb")  # type: ignore[arg-type]
