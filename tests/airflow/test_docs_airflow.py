"""What docs/airflow.md and the setup scripts tell a user matches the DAG specs: the
pool that the scripts create is the specs' default, and the REST example's
``AIRFLOW_HOME`` comes from a file that sets it."""

from __future__ import annotations

import dataclasses
import re
import subprocess

from automl_airflow.specs import DagSpec

from tests.airflow.helpers import REPO


def test_the_scripts_create_the_specs_default_pool() -> None:
    (default,) = [f.default for f in dataclasses.fields(DagSpec) if f.name == "pool"]
    for script in ("scripts/airflow_env.sh", "docker/airflow-init.sh"):
        text = (REPO / script).read_text()
        (pool,) = re.findall(r"^\s*airflow pools set (\S+) ", text, re.M)
        assert pool == default, script


def test_the_rest_example_sources_the_file_that_sets_airflow_home() -> None:
    doc = (REPO / "docs" / "airflow.md").read_text()
    example = doc[doc.index("Through the REST API") :]
    example = example[: example.index('os.environ["AIRFLOW_HOME"]')]
    assert "source scripts/airflow_env.sh" in example
    done = subprocess.run(
        ["bash", "-c", "unset AIRFLOW_HOME; source scripts/airflow_env.sh; echo $AIRFLOW_HOME"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.strip() == str(REPO / "airflow_home"), done.stderr
