"""The database hook: the Postgres provider's hook, plus what automl_core needs.

Greenplum and Cloudberry speak the PostgreSQL protocol, so a Postgres connection works
for both; this hook adds only the two things that differ for this project: the URL that
``automl_core`` connects with, and whether the server is Greenplum.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.sdk.exceptions import AirflowNotFoundException

from automl_airflow.task_values import AUTOML_CONN_ID

# libpq options that may travel from a connection's extras into the URL; others
# (the provider's own "cursor", "iam", ...) mean nothing to psycopg2.
LIBPQ_EXTRAS = frozenset(
    {
        "sslmode",
        "sslcert",
        "sslkey",
        "sslrootcert",
        "sslcrl",
        "connect_timeout",
        "application_name",
        "options",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "target_session_attrs",
    }
)


class GreenplumHook(PostgresHook):
    """Connects to the Greenplum/PostgreSQL database holding the data and the results.

    :param automl_conn_id: an Airflow connection of type Postgres. When no such
        connection is defined, :meth:`get_automl_url` returns ``None`` and automl_core
        uses its own default: ``AUTOML_DB_URL`` or the embedded server.
    """

    conn_name_attr = "automl_conn_id"
    default_conn_name = AUTOML_CONN_ID
    hook_name = "AutoML Greenplum"

    def get_automl_url(self) -> str | None:
        """A psycopg2 URL for ``automl_core``, or ``None`` to use automl_core's default."""
        try:
            conn = self.get_connection(self.get_conn_id())
        except AirflowNotFoundException:
            self.log.info(
                "No Airflow connection %r: automl_core uses AUTOML_DB_URL or its embedded database",
                self.get_conn_id(),
            )
            return None
        userinfo = ""
        if conn.login:
            userinfo = quote(conn.login, safe="")
            if conn.password:
                userinfo += ":" + quote(conn.password, safe="")
            userinfo += "@"
        host = conn.host or ""
        port = f":{conn.port}" if conn.port else ""
        dbname = quote(conn.schema or "", safe="")
        extras = {k: v for k, v in conn.extra_dejson.items() if k in LIBPQ_EXTRAS}
        query = f"?{urlencode(extras)}" if extras else ""
        return f"postgresql://{userinfo}{host}{port}/{dbname}{query}"

    def is_greenplum(self) -> bool:
        """Whether the server is Greenplum or Cloudberry (asked with automl_core's check)."""
        from automl_core.store.connection import connect
        from automl_core.store.dialect import Dialect

        conn = connect(self.get_automl_url())
        try:
            return bool(Dialect.detect(conn).is_greenplum)
        finally:
            conn.close()
