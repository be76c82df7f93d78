"""A run whose engine task fails before any engine starts fails, instead of waiting.

The training tasks wait for an engine; when the run's engine task has ended without
training their trials (here: its cluster name is not one of the clusters of the host it
runs on), they fail at once with a message that says so. Before, ``dag.test()``
rescheduled them every 2 s for ever (and under a scheduler they waited a day).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.airflow.helpers import REPO

SPEC = """\
dag_id: automl_engine_fails_first
dataset: digits
load_if_missing: digits
partitions: 2
space: examples/spaces/digits.yaml
method: hyperband
budget: {R: 3, eta: 3}
retries: 0
"""
DAG_FILE = """\
from pathlib import Path
from automl_airflow.dag_factory import dags_from_specs
for _dag in dags_from_specs(Path({specs!r}), base_dir=Path({repo!r})).values():
    globals()[_dag.dag_id] = _dag
"""


@pytest.mark.timeout(300)  # the old code rescheduled the training tasks for ever
def test_training_tasks_fail_when_the_engine_task_failed_before_it_started(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    db_url: str,
    airflow_db: Path,
    automl_home: Path,
) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "engine_fails_first.yaml").write_text(SPEC)
    (tmp_path / "engine_dags.py").write_text(
        DAG_FILE.format(specs=str(tmp_path / "specs"), repo=str(REPO))
    )
    # The DAG is parsed where the cluster "elsewhere" is defined, and runs where it is not.
    monkeypatch.setenv("AUTOML_DASK_CLUSTERS", json.dumps({"elsewhere": "tcp://127.0.0.1:9"}))
    bag = DagBag(dag_folder=str(tmp_path), bundle_path=tmp_path)
    assert not bag.import_errors, bag.import_errors
    # Written to the metadata database as the DAG processor would: dag.test() needs it.
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    dag = bag.dags["automl_engine_fails_first"]
    monkeypatch.delenv("AUTOML_DASK_CLUSTERS")

    dag_run = dag.test(run_conf={"cluster": "elsewhere", "experiment_name": "engine-fails"})

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "failed", states
    assert states["engine"] == "failed"
    assert states["finalize"] == "upstream_failed"
    training = {task: state for task, state in states.items() if ".train_" in task}
    assert "failed" in training.values(), states
    assert "success" not in training.values(), states
