"""Which database to use, and connecting to it.

``AUTOML_DB_URL`` names the database when it is set; otherwise the project's embedded
PostgreSQL server (``automl_core.store.embedded``) is started on first use and shared by
every process that uses the same project home.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg2
import psycopg2.extensions

from automl_core.errors import UserInputError
from automl_core.store.config import DB_URL_ENV, configured_db_url, project_home

# Applied only when the URL does not set them: a dead host should fail in seconds, not
# hang a training task, and the sessions should be recognisable in pg_stat_activity.
_CONNECT_DEFAULTS = {"connect_timeout": "10", "application_name": "automl"}

# user:password@ in a URI, and password=... in a URI query or a key=value string.
_URI_PASSWORD = re.compile(r"(://[^:/@?#\s]*:)[^@/?#\s]*@")
_PARAM_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)


def describe(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print or log.

    Works on URIs (``postgresql://user:secret@host/db``, ``...?password=secret``) and on
    key=value strings (``host=h password=secret``), and on malformed ones too, since it
    is used in the messages that report a malformed URL.
    """
    masked = _URI_PASSWORD.sub(r"\1***@", url)
    return _PARAM_PASSWORD.sub(r"\1***", masked)


def using_embedded() -> bool:
    """Whether the database in use is the embedded server (``AUTOML_DB_URL`` is unset)."""
    return configured_db_url() is None


def database_url() -> str:
    """The URL of the database to use.

    ``AUTOML_DB_URL`` when set; else the URL of the embedded server in the project home,
    which is started here if it is not running (another process may have started it: it
    is found and reused).

    Raises:
        UserInputError: the embedded server cannot be started (the message names its log).
    """
    url = configured_db_url()
    if url is not None:
        return url
    from automl_core.store.embedded import ensure_server  # only without AUTOML_DB_URL

    return ensure_server(project_home()).url


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """A new psycopg2 connection (autocommit off) to ``url``, default ``database_url()``.

    ``connect_timeout=10`` and ``application_name=automl`` are added unless the URL sets
    them. The caller owns the connection and closes it.

    Raises:
        UserInputError: the URL is malformed, or the server cannot be reached or refuses
            the login; the message names where the URL came from and what to check.
    """
    env_url = configured_db_url()
    if url is not None:
        source = "the database URL given"
        hint = "Check the URL."
    elif env_url is not None:
        url = env_url
        source = DB_URL_ENV
        hint = (
            f"Check that the server is running and reachable, that the host, port, user, "
            f"password and database in {DB_URL_ENV} are right, or unset {DB_URL_ENV} to use "
            f"the embedded server."
        )
    else:
        url = database_url()
        source = "the embedded server"
        from automl_core.store.embedded import log_path

        hint = (
            f"See the server log at {log_path(project_home())}, or set {DB_URL_ENV} "
            f"to use another server."
        )
    params = _parse(url, source)
    extra: dict[str, Any] = {k: v for k, v in _CONNECT_DEFAULTS.items() if k not in params}
    try:
        return psycopg2.connect(url, **extra)
    except psycopg2.OperationalError as exc:
        reason = describe(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        raise UserInputError(
            f"cannot connect to the database {describe(url)} (from {source}): {reason}. {hint}"
        ) from None


def _parse(url: str, source: str) -> dict[str, str]:
    """The parameters in ``url``; raises UserInputError naming ``source`` when malformed."""
    try:
        return psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError as exc:
        reason = describe(str(exc).strip())
        example = "postgresql://USER:PASSWORD@HOST:5432/DATABASE"
        raise UserInputError(
            f"the database URL {describe(url)} (from {source}) is malformed: {reason}. "
            f"Write it as {example} or as key=value pairs (host=... dbname=...)."
        ) from None
