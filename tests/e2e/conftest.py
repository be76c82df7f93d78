"""One ``airflow standalone`` for the whole e2e session, shared by the REST and UI tests.

It runs on loopback on a free port, with AIRFLOW_HOME in a temporary folder, PostgreSQL
metadata in a fresh database, two task slots and the ``automl_training`` pool. The
results go to another fresh database, named by the ``automl_db`` Airflow connection
(AIRFLOW_CONN_AUTOML_DB), so the tasks reach it through the hook, not AUTOML_DB_URL.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.airflow_server import HYPERBAND_DAG, AirflowStandalone, session_processes


@pytest.fixture(scope="session")
def automl_db(make_database: Callable[[], str]) -> str:
    """The database the DAG runs write their data and results to."""
    return make_database()


@pytest.fixture(scope="session")
def automl_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="automl-e2e-home-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_server(
    make_database: Callable[[], str], automl_db: str, automl_home: Path
) -> Iterator[AirflowStandalone]:
    home = Path(tempfile.mkdtemp(prefix="automl-e2e-airflow-"))
    metadata = make_database().replace("postgresql://", "postgresql+psycopg2://", 1)
    server = AirflowStandalone(
        home=home,
        metadata_url=metadata,
        env_extra={"AIRFLOW_CONN_AUTOML_DB": automl_db, "AUTOML_HOME": str(automl_home)},
    )
    try:
        server.start()
        server.wait_for_dag(HYPERBAND_DAG)
        server.unpause(HYPERBAND_DAG)
        yield server
    finally:
        killed = server.stop()
        leftover = session_processes(server.process.pid) if server.process else []
        shutil.rmtree(home, ignore_errors=True)
    if killed:
        # Airflow's own shutdown sometimes leaves LocalExecutor workers (they ignore
        # SIGINT and inherit the scheduler's SIGTERM handler): worth knowing, not a failure.
        warnings.warn(f"needed SIGKILL after SIGINT and SIGTERM: {killed}", stacklevel=1)
    assert not leftover, f"processes of airflow standalone left running: {leftover}"
