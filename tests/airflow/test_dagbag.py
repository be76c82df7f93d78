"""The DAG file as Airflow loads it: no import errors, cheap to parse, broken specs isolated."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from automl_airflow.dag_factory import INVALID_SPEC_TAG
from automl_airflow.specs import SpecError

from tests.airflow.helpers import DAGS, EXAMPLE_DAG_IDS, REPO, SPECS


def test_dagbag_loads_every_example_without_import_errors() -> None:
    start = time.perf_counter()
    bag = DagBag(dag_folder=str(DAGS))
    seconds = time.perf_counter() - start
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == EXAMPLE_DAG_IDS
    assert not any(bag.captured_warnings.values()), bag.captured_warnings
    # Measured ~0.5 s on 2 cores; the scheduler re-parses this file every few minutes.
    assert seconds < 5, f"parsing dags/ took {seconds:.1f} s"


PARSE_PROBE = """
import json, sys, time
import psycopg2

def refuse(*args, **kwargs):
    raise AssertionError("a database connection was opened at parse time")

psycopg2.connect = refuse
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "errors": bag.import_errors,
    "dags": sorted(bag.dag_ids),
    "heavy": sorted(m for m in HEAVY if m in sys.modules),
}))
"""
# Never imported to build the DAGs: the DAG processor parses the file again for every task
# that ends in the triggerer. psycopg is the Postgres provider's driver (the hook's);
# the engine module stands for automl_core's run-time steps.
HEAVY = (
    "torch",
    "dask",
    "distributed",
    "hyperopt",
    "psycopg",
    "airflow.providers.postgres.hooks.postgres",
    "automl_core.experiment.engine",
)


@pytest.mark.timeout(300)  # a fresh interpreter importing airflow (its own limit: 120 s)
def test_parsing_imports_no_torch_and_opens_no_database() -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PARSE_PROBE}", str(DAGS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert set(result["dags"]) == EXAMPLE_DAG_IDS
    assert result["heavy"] == [], f"parsing imported {result['heavy']}"


@pytest.fixture
def mixed_dag_folder(tmp_path: Path) -> Path:
    """A copy of the DAG file with one good spec and three broken ones."""
    shutil.copytree(REPO / "examples" / "spaces", tmp_path / "examples" / "spaces")
    dags = tmp_path / "dags"
    (dags / "specs").mkdir(parents=True)
    shutil.copy(DAGS / "automl_dags.py", dags / "automl_dags.py")
    shutil.copy(SPECS / "hyperband_digits.yaml", dags / "specs" / "good.yaml")
    broken = (SPECS / "random_digits.yaml").read_text().replace("n: 8", "R: 8")
    (dags / "specs" / "broken_budget.yaml").write_text(broken)
    (dags / "specs" / "not_yaml.yaml").write_text("dag_id: [unclosed\n")
    dup = (
        (SPECS / "hyperopt_digits.yaml")
        .read_text()
        .replace("automl_hyperopt_digits", "automl_hyperband_digits")
    )
    (dags / "specs" / "zz_duplicate.yaml").write_text(dup)
    return dags


def test_a_broken_spec_does_not_hide_the_good_ones(mixed_dag_folder: Path) -> None:
    # DagBag records the warnings of a parse and emits them again afterwards.
    with pytest.warns(UserWarning):
        bag = DagBag(dag_folder=str(mixed_dag_folder))
    assert bag.import_errors == {}
    # The good spec is built as usual.
    good = bag.dags["automl_hyperband_digits"]
    assert INVALID_SPEC_TAG not in good.tags
    assert "bracket_2.train_rung_2" in good.task_dict
    # A spec whose dag_id is readable keeps it, as a paused stand-in with the error.
    broken = bag.dags["automl_random_digits"]
    assert INVALID_SPEC_TAG in broken.tags
    description = str(broken.description)
    assert "budget.R" in description and "broken_budget.yaml" in description
    assert broken.is_paused_upon_creation is True
    assert list(broken.task_dict) == ["invalid_spec"]
    # Unreadable YAML and a duplicate dag_id get a stand-in named after the file.
    assert "automl_invalid_spec__not_yaml" in bag.dags
    duplicate = bag.dags["automl_invalid_spec__zz_duplicate"]
    assert "already used by" in str(duplicate.description)
    # The DAG processor logs the warnings; DagBag keeps them per file.
    warnings = " ".join(w for ws in bag.captured_warnings.values() for w in ws)
    assert "broken_budget.yaml: key 'budget.R'" in warnings
    assert "not_yaml.yaml" in warnings
    assert "InvalidSpecWarning" in warnings


def test_the_stand_in_task_fails_with_the_spec_error(mixed_dag_folder: Path) -> None:
    with pytest.warns(UserWarning):
        bag = DagBag(dag_folder=str(mixed_dag_folder))
    task: Any = bag.dags["automl_random_digits"].get_task("invalid_spec")
    with pytest.raises(SpecError, match="budget.R"):
        task.execute(context={})
