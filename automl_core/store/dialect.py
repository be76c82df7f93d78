"""The few places where Greenplum (or Cloudberry) SQL differs from PostgreSQL SQL.

Everything else is plain SQL that runs on both. A ``Dialect`` is detected once per
connection from ``version()`` and then only produces ``psycopg2.sql`` fragments:

- ``distributed_by(*cols)`` / ``distributed_replicated()``: the table distribution clause
  appended to ``CREATE TABLE``; empty on PostgreSQL.
- ``references(...)``: a foreign key clause. Greenplum does not enforce foreign keys (it
  warns, or refuses them between differently distributed tables), so there it is empty
  and a caller that deletes an experiment must delete its child rows itself.
- ``segment_id()``: the segment a row lives on (``gp_segment_id``); the constant 0 on
  PostgreSQL, which has a single "segment".

Greenplum 7 or later (or Cloudberry) is assumed: the repository relies on
``INSERT ... ON CONFLICT``, which Greenplum 6 does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

_GREENPLUM_MARKERS = ("greenplum", "cloudberry")


@dataclass(frozen=True)
class Dialect:
    """The SQL flavour of one server. Build with ``detect(conn)`` or the constructors."""

    is_greenplum: bool
    version: str = ""

    @classmethod
    def detect(cls, conn: Any) -> Dialect:
        """The dialect of the server behind ``conn`` (a psycopg2 connection).

        Reads ``version()``: Greenplum and Cloudberry both name themselves in it. Runs one
        query in the connection's current transaction and leaves the transaction open.
        """
        with conn.cursor() as cur:
            cur.execute("SELECT version()")
            row = cur.fetchone()
        return cls.from_version(str(row[0]) if row else "")

    @classmethod
    def from_version(cls, version: str) -> Dialect:
        """The dialect for a ``version()`` string."""
        lowered = version.lower()
        return cls(is_greenplum=any(m in lowered for m in _GREENPLUM_MARKERS), version=version)

    @classmethod
    def postgres(cls) -> Dialect:
        """Plain PostgreSQL (for tests and offline rendering)."""
        return cls(is_greenplum=False, version="PostgreSQL")

    @classmethod
    def greenplum(cls) -> Dialect:
        """Greenplum (for tests and offline rendering)."""
        return cls(is_greenplum=True, version="PostgreSQL 12 (Greenplum Database 7)")

    @property
    def name(self) -> str:
        """``"Greenplum"`` or ``"PostgreSQL"``, for messages and ``automl db status``."""
        return "Greenplum" if self.is_greenplum else "PostgreSQL"

    def distributed_by(self, *columns: str) -> sql.Composable:
        """`` DISTRIBUTED BY (cols)`` on Greenplum, nothing on PostgreSQL.

        Raises:
            ValueError: no column was given (a distribution key needs at least one).
        """
        if not columns:
            raise ValueError("distributed_by() needs at least one column")
        if not self.is_greenplum:
            return sql.SQL("")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        return sql.SQL(" DISTRIBUTED BY ({})").format(cols)

    def distributed_replicated(self) -> sql.Composable:
        """`` DISTRIBUTED REPLICATED`` on Greenplum, nothing on PostgreSQL.

        For small tables that need unique keys on different columns (Greenplum enforces a
        unique key only when it contains the distribution key; a replicated table has none).
        """
        return sql.SQL(" DISTRIBUTED REPLICATED") if self.is_greenplum else sql.SQL("")

    def references(
        self, table: sql.Composable, column: str, *, on_delete: str = "CASCADE"
    ) -> sql.Composable:
        """`` REFERENCES table (column) ON DELETE ...`` on PostgreSQL; nothing on Greenplum.

        Raises:
            ValueError: ``on_delete`` is not one of CASCADE, RESTRICT, SET NULL, NO ACTION.
        """
        actions = ("CASCADE", "RESTRICT", "SET NULL", "NO ACTION")
        if on_delete not in actions:
            raise ValueError(f"on_delete is {on_delete!r}, but must be one of {actions}")
        if self.is_greenplum:
            return sql.SQL("")
        return sql.SQL(" REFERENCES {} ({}) ON DELETE {}").format(
            table, sql.Identifier(column), sql.SQL(on_delete)
        )

    def segment_id(self) -> sql.Composable:
        """An expression for the segment a row is stored on: ``gp_segment_id`` or ``0``."""
        return sql.SQL("gp_segment_id") if self.is_greenplum else sql.SQL("0")
