"""The database layer: connections, schema and rows (the embedded server is its own package).

``connect()`` and ``database_url()`` pick the database (``AUTOML_DB_URL`` or the embedded
server); ``migrate()`` brings the ``automl`` schema up to date; ``Dialect`` hides the
differences between PostgreSQL and Greenplum; ``automl_core.store.repository`` reads and
writes the rows.
"""

from automl_core.config import project_home
from automl_core.store.connection import connect, database_url, describe, using_embedded
from automl_core.store.dialect import Dialect
from automl_core.store.migrations import LATEST_VERSION, SCHEMA, current_version, migrate

__all__ = [
    "LATEST_VERSION",
    "SCHEMA",
    "Dialect",
    "connect",
    "current_version",
    "database_url",
    "describe",
    "migrate",
    "project_home",
    "using_embedded",
]
