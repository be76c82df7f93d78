"""``automl db``: create or upgrade the schema, show which database is in use, stop the
embedded server."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``automl db init|status|stop``."""
    parser = subparsers.add_parser(
        "db",
        help="the database: create the schema, show status",
        description="The database that holds experiments and results: AUTOML_DB_URL when "
        "set, else an embedded PostgreSQL server inside the project home (AUTOML_HOME).",
    )
    actions = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    actions.add_parser(
        "init", help="create or upgrade the automl schema (safe to repeat)"
    ).set_defaults(handler=init)
    actions.add_parser(
        "status",
        help="show the database in use, its schema version, and stale or interrupted experiments",
    ).set_defaults(handler=status)
    actions.add_parser(
        "stop", help="stop the embedded server (nothing to do when AUTOML_DB_URL is set)"
    ).set_defaults(handler=stop)


def _where(url: str) -> str:
    """The masked URL and where it came from."""
    from automl_core.config import DB_URL_ENV
    from automl_core.store import describe, project_home, using_embedded

    if using_embedded():
        from automl_core.embedded_server.server import log_path

        origin = f"embedded server in {project_home()}, log {log_path(project_home())}"
    else:
        origin = f"from {DB_URL_ENV}"
    return f"{describe(url)} ({origin})"


def init(args: argparse.Namespace) -> int:
    """Apply the pending migrations and say which were applied."""
    from automl_core.store import connect, current_version, database_url, migrate
    from automl_core.store.migrations import MIGRATIONS

    url = database_url()
    conn = connect()
    try:
        print(f"database: {_where(url)}")
        applied = migrate(conn)
        if not applied:
            print(f"already at version {current_version(conn)}")
            return 0
        names = {m.version: m.name for m in MIGRATIONS}
        listed = ", ".join(f"{v} ({names[v]})" for v in applied)
        print(f"applied migrations: {listed}")
        print(f"schema now at version {current_version(conn)}")
    finally:
        conn.close()
    return 0


def status(args: argparse.Namespace) -> int:
    """Print the database in use, its server and the schema version."""
    from automl_core.store import LATEST_VERSION, Dialect, connect, current_version, database_url

    url = database_url()
    conn = connect()
    try:
        dialect = Dialect.detect(conn)
        version = current_version(conn)
        # Experiments are read only from a schema this automl knows (their columns).
        unfinished = _unfinished(conn) if version == LATEST_VERSION else []
    finally:
        conn.close()
    print(f"database: {_where(url)}")
    print(f"server:   {dialect.version.split(' on ')[0]}")
    print(f"engine:   {dialect.name}")
    if version == 0:
        schema = "not initialised; run automl db init"
    elif version < LATEST_VERSION:
        schema = f"version {version}, behind this automl ({LATEST_VERSION}); run automl db init"
    elif version > LATEST_VERSION:
        schema = f"version {version}, newer than this automl ({LATEST_VERSION}); upgrade automl"
    else:
        schema = f"version {version} (up to date)"
    print(f"schema:   {schema}")
    for line in unfinished:
        print(line)
    return 0


def _unfinished(conn: Any) -> list[str]:
    """A line for each experiment that stopped before its end, with how to resume it.

    ``stale``: marked running, but its engine's process is gone (killed, or it lost the
    database); ``interrupted``: stopped by a signal. Neither has anything running.
    """
    from automl_core.store import repository as repo

    lines = [
        f"stale:    experiment {exp.name!r} is marked running but its engine (pid {lease.pid} "
        f"on {lease.host}, last heartbeat {lease.heartbeat_age_s:.0f} s ago) is gone; to "
        f"resume it, {repo.resume_hint(exp)}"
        for exp, lease in repo.stale_experiments(conn)
    ]
    lines += [
        f"interrupted: experiment {exp.name!r} was stopped; to resume it, {repo.resume_hint(exp)}"
        for exp in repo.list_experiments(conn)
        if exp.status == repo.ExperimentState.INTERRUPTED
    ]
    return lines


def stop(args: argparse.Namespace) -> int:
    """Stop the embedded server of the project home, if it runs."""
    from automl_core.config import DB_URL_ENV
    from automl_core.store import project_home, using_embedded

    if not using_embedded():
        print(f"{DB_URL_ENV} is set: the embedded server is not in use; nothing to stop")
        return 0
    from automl_core.embedded_server.server import stop as stop_server

    if stop_server(project_home()):
        print(f"stopped the embedded server in {project_home()}")
    else:
        print(f"the embedded server in {project_home()} is not running")
    return 0
