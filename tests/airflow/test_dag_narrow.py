"""The run form's "narrow from experiment": a second round on a narrowed space, via Airflow.

The parent is a small random search made with ``automl_core`` on the same database; the
Hyperopt example DAG then runs under ``dag.test()`` with ``narrow_from`` in its conf. Its
experiment records the parent, searches the parent's space narrowed to its top trials
(the same space ``automl space narrow`` gives) and every trial lies in it. A parent that
does not exist fails ``validate_conf`` before anything is written. Grid DAGs have no
such field (a grid's batches follow its space's size), and the form refuses anything
but an experiment name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import ParamValidationError

from automl_core.cli import main
from automl_core.experiment import SearchRequest, run_search
from automl_core.experiment.narrowing import narrow_experiment
from automl_core.space import SearchSpace
from automl_core.store import repository as repo
from automl_core.store.connection import connect
from tests.airflow.test_dag_run import dags, dask_cluster, query, run  # noqa: F401
from tests.airflow.test_dag_structure import example, serialized

PARENT = "narrow-dag-parent"
SPACE = {
    "architecture": "mlp",
    "hidden": [32, 64],
    "optimizer": "adam",
    "lr": {"loguniform": [0.001, 0.01]},
    "batch_size": [32, 64, 128],
}


def make_parent(url: str, cluster: str) -> None:
    """Digits in ``url`` (what the DAG's prepare step would do) and a small random search."""
    assert main(["data", "load", "digits", "--table", "digits"]) == 0
    assert main(["data", "prepare", "digits", "--partitions", "2", "--seed", "0"]) == 0
    request = SearchRequest(
        dataset="digits", space=SPACE, method="random", name=PARENT, n=6, epochs=1,
        cluster=cluster,
    )  # fmt: skip
    run_search(request, progress=False, db_url=url)


@pytest.mark.timeout(600)  # a parent search, then the Hyperopt DAG under dag.test()
def test_the_form_narrows_from_an_experiment(
    dags: dict[str, DAG],  # noqa: F811
    db_url: str,
    airflow_db: Path,
    automl_home: Path,
    dask_cluster: str,  # noqa: F811
) -> None:
    make_parent(db_url, dask_cluster)
    dag = dags["automl_hyperopt_digits"]

    # A parent that does not exist: validate_conf fails, no experiment is made.
    bad = dag.test(run_conf={"narrow_from": "no-such-parent", "experiment_name": "narrow-bad"})
    states = {ti.task_id: ti.state for ti in bad.get_task_instances()}
    assert bad.state == "failed" and states["validate_conf"] == "failed", states
    assert query(db_url, "SELECT name FROM automl.experiments WHERE name = 'narrow-bad'") == []

    conf = {
        "epochs": 1,
        "experiment_name": "narrow-dag-child",
        "narrow_from": PARENT,
        "narrow_top": 3,
        "cluster": "shared",
    }
    run(dag, conf)
    conn = connect(db_url)
    try:
        child = repo.get_experiment(conn, "narrow-dag-child")
        trials = repo.get_trials(conn, child.id)
    finally:
        conn.close()
    assert child.parent_experiment == PARENT and child.status == "completed"
    narrowed = SearchSpace.from_dict(narrow_experiment(PARENT, top=3, db_url=db_url).space)
    assert SearchSpace.from_dict(child.spec["space"]) == narrowed
    assert narrowed != SearchSpace.from_dict(SPACE)
    assert len(trials) == 12 and all(narrowed.contains(t.config) for t in trials)


def test_the_form_field_is_an_experiment_name_and_grid_dags_have_none() -> None:
    params = serialized(example("hyperopt_digits.yaml")).params
    assert params.get_param("narrow_from").value is None
    assert params.get_param("narrow_top").value == 5
    for bad in ("../../etc/passwd", "/tmp/space.yaml", "a b", "-x"):
        with pytest.raises(ParamValidationError, match="param narrow_from"):
            params.deep_merge({"narrow_from": bad}).validate()
    for bad_top in (0, 10_001, "3"):
        with pytest.raises(ParamValidationError, match="param narrow_top"):
            params.deep_merge({"narrow_top": bad_top}).validate()
    assert params.deep_merge({"narrow_from": "hyperopt-2026.01"}).validate()["narrow_from"]
    grid = example("grid_digits.yaml").params
    assert "narrow_from" not in grid and "narrow_top" not in grid
