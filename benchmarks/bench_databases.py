"""Fresh databases for a benchmark run on the server at ``AUTOML_TEST_PG_URL``.

Like the tests (tests/conftest.py), a benchmark works on a database of its own and drops
it at the end, so nothing an earlier run left can change a figure.
"""

from __future__ import annotations

import os
import uuid

ADMIN_URL = os.environ.get("AUTOML_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def create_database(prefix: str = "automl_bench") -> str:
    """A fresh, empty database; returns its URL."""
    import psycopg2
    from psycopg2 import sql

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    """Drop a database made by :func:`create_database`, even with sessions still open."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        name = sql.Identifier(url.rsplit("/", 1)[1])
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
    conn.close()
