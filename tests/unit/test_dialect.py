"""The dialect's SQL and the DDL of the migrations, rendered offline for both engines.

Greenplum cannot run here, so these tests pin the statements that would be sent to it:
distribution clauses, no foreign keys, and Greenplum's rule that every unique key
contains the distribution key. Whether Greenplum accepts them was not executed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from psycopg2 import sql

from automl_core.store.dialect import Dialect
from automl_core.store.migrations import MIGRATIONS, Migration, _bootstrap, _check_registry

GREENPLUM_7 = (
    "PostgreSQL 12.12 (Greenplum Database 7.1.0 build commit:e7c2b1f) on x86_64-pc-linux-gnu, "
    "compiled by gcc (GCC) 8.5.0, 64-bit compiled on Jan 19 2024"
)
CLOUDBERRY = "PostgreSQL 14.4 (Apache Cloudberry 1.6.0 build 1) on x86_64-pc-linux-gnu"
POSTGRES = "PostgreSQL 16.2 (Debian 16.2-1.pgdg120+2) on x86_64-pc-linux-gnu, compiled by gcc"


def render(obj: Any) -> str:
    """A psycopg2.sql object as text, without a connection (identifiers double-quoted)."""
    if isinstance(obj, sql.Composed):
        return "".join(render(part) for part in obj.seq)
    if isinstance(obj, sql.SQL):
        return obj.string
    if isinstance(obj, sql.Identifier):
        return ".".join('"' + s.replace('"', '""') + '"' for s in obj.strings)
    if isinstance(obj, str):
        return obj
    raise TypeError(f"cannot render {obj!r}")


class RecordingCursor:
    """Records statements; answers every fetch with ``(None,)`` (nothing exists yet)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, statement: Any, params: Any = None) -> None:
        self.statements.append(" ".join(render(statement).split()))

    def fetchone(self) -> tuple[None]:
        return (None,)


class FakeConnection:
    def __init__(self, version: str) -> None:
        self.version = version

    def cursor(self) -> Any:
        version = self.version

        class Cursor:
            def __enter__(self) -> Cursor:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

            def execute(self, statement: str) -> None:
                assert statement == "SELECT version()"

            def fetchone(self) -> tuple[str]:
                return (version,)

        return Cursor()


@pytest.mark.parametrize(
    ("version", "greenplum"), [(GREENPLUM_7, True), (CLOUDBERRY, True), (POSTGRES, False)]
)
def test_detect_reads_version(version: str, greenplum: bool) -> None:
    dialect = Dialect.detect(FakeConnection(version))
    assert dialect.is_greenplum is greenplum
    assert dialect.name == ("Greenplum" if greenplum else "PostgreSQL")
    assert dialect.version == version


def test_distribution_clauses() -> None:
    gp, pg = Dialect.greenplum(), Dialect.postgres()
    assert render(gp.distributed_by("experiment_id")) == ' DISTRIBUTED BY ("experiment_id")'
    assert render(gp.distributed_by("a", 'we"ird')) == ' DISTRIBUTED BY ("a", "we""ird")'
    assert render(pg.distributed_by("experiment_id")) == ""
    assert render(gp.distributed_replicated()) == " DISTRIBUTED REPLICATED"
    assert render(pg.distributed_replicated()) == ""
    with pytest.raises(ValueError, match="at least one column"):
        gp.distributed_by()


def test_references_and_segment_id() -> None:
    gp, pg = Dialect.greenplum(), Dialect.postgres()
    table = sql.Identifier("automl", "experiments")
    assert render(pg.references(table, "id")) == (
        ' REFERENCES "automl"."experiments" ("id") ON DELETE CASCADE'
    )
    assert render(gp.references(table, "id")) == ""
    with pytest.raises(ValueError, match="on_delete"):
        pg.references(table, "id", on_delete="DROP TABLE x")
    assert render(gp.segment_id()) == "gp_segment_id"
    assert render(pg.segment_id()) == "0"


def ddl(dialect: Dialect) -> dict[str, str]:
    """Every migration as run on ``dialect``: each CREATE TABLE by table name."""
    cur = RecordingCursor()
    _bootstrap(cur, dialect)
    for migration in MIGRATIONS:
        migration.apply(cur, dialect)
    tables = {}
    for statement in cur.statements:
        match = re.match(r'CREATE TABLE "automl"\."(\w+)"', statement)
        if match:
            tables[match.group(1)] = statement
    return tables


EXPERIMENT_TABLES = (
    "trials",
    "trial_epochs",
    "rungs",
    "checkpoints",
    "mop_jobs",
    "training_requests",
    "engines",
    "best_checkpoints",
    "evaluations",
)


def test_greenplum_ddl_distributes_every_table() -> None:
    tables = ddl(Dialect.greenplum())
    assert set(tables) == {"schema_migrations", "datasets", "experiments", *EXPERIMENT_TABLES}
    for name in EXPERIMENT_TABLES:
        assert tables[name].endswith(' DISTRIBUTED BY ("experiment_id")'), name
    assert tables["datasets"].endswith(' DISTRIBUTED BY ("name")')
    assert tables["schema_migrations"].endswith(' DISTRIBUTED BY ("version")')
    assert tables["experiments"].endswith(" DISTRIBUTED REPLICATED")
    assert not any("REFERENCES" in s for s in tables.values())


def key_columns(statement: str) -> list[list[str]]:
    """The column lists of PRIMARY KEY / UNIQUE constraints, inline or as table clauses."""
    keys = [
        [c.strip().strip('"') for c in cols.split(",")]
        for cols in re.findall(r"(?:PRIMARY KEY|UNIQUE) \(([^)]*)\)", statement)
    ]
    keys += [
        [col] for col in re.findall(r'"?(\w+)"? \w+(?: \w+)* (?:PRIMARY KEY|UNIQUE)[,)]', statement)
    ]
    return keys


def test_greenplum_unique_keys_contain_the_distribution_key() -> None:
    for name, statement in ddl(Dialect.greenplum()).items():
        match = re.search(r"DISTRIBUTED BY \(([^)]*)\)$", statement)
        if match is None:
            assert statement.endswith("DISTRIBUTED REPLICATED"), name
            continue
        distribution = {c.strip().strip('"') for c in match.group(1).split(",")}
        keys = key_columns(statement)
        assert keys, name
        for key in keys:
            assert distribution <= set(key), (name, key)


def test_postgres_ddl_has_no_greenplum_clauses_and_cascades() -> None:
    tables = ddl(Dialect.postgres())
    assert not any("DISTRIBUTED" in s for s in tables.values())
    for name in EXPERIMENT_TABLES:
        assert 'REFERENCES "automl"."experiments" ("id") ON DELETE CASCADE' in tables[name], name
    assert "id bigserial PRIMARY KEY" in tables["experiments"]
    assert "name text NOT NULL UNIQUE" in tables["experiments"]
    assert "started_at double precision" in tables["mop_jobs"]
    assert '"partition" integer NOT NULL' in tables["mop_jobs"]


def test_migration_registry_must_count_from_one() -> None:
    assert _check_registry(MIGRATIONS) == len(MIGRATIONS)

    def noop(cur: Any, dialect: Dialect) -> None:
        return None

    with pytest.raises(RuntimeError, match="1..N"):
        _check_registry((Migration(1, "a", noop), Migration(3, "c", noop)))
    with pytest.raises(RuntimeError, match="1..N"):
        _check_registry((Migration(2, "b", noop), Migration(1, "a", noop)))
