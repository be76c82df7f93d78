"""Airflow tier: the DAG factory, the DAG file, and runs with ``dag.test()``.

Airflow reads its configuration once, when it is first imported, so the environment is
set here, at collection time, before any test module imports it: ``AIRFLOW_HOME`` in a
temporary folder (never ``~/airflow``), no example DAGs, and this repository's
``dags/`` as the DAG folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.helpers import DAGS

_HOME = Path(tempfile.mkdtemp(prefix="automl-airflow-home-"))

os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__PARALLELISM"] = "2"


@pytest.fixture(scope="session", autouse=True)
def _airflow_home() -> Iterator[Path]:
    yield _HOME
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The Airflow metadata database (SQLite in AIRFLOW_HOME), migrated once."""
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout}\n{done.stderr}"
    return _HOME / "airflow.db"


@pytest.fixture
def automl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private AUTOML_HOME (reports, exports, the embedded server) for one test."""
    home = tmp_path / "automl_home"
    home.mkdir()
    monkeypatch.setenv("AUTOML_HOME", str(home))
    return home
