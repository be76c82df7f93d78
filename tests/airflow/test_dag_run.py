"""The example DAGs run with ``dag.test()`` on digits, and their results are in the tables.

Each run trains real models (2 partitions, so 2 Dask workers). Budgets are the examples'
own for Hyperband (R=9: 69 epochs over 17 trials) and cut by the run conf for Hyperopt
(epochs=2). The runs on the test server share one Dask cluster through the ``cluster``
param; on the embedded default the engine task starts its own. A re-run of the same DAG
run (what clearing it in the UI does) must continue from the database: nothing trained
again, no row added.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG

from tests.airflow.helpers import DAGS

# Hyperband R=9, eta=3 (Li et al. 2018): (bracket, rung) -> (n_i, r_i).
HYPERBAND_RUNGS = {
    (2, 0): (9, 1),
    (2, 1): (3, 3),
    (2, 2): (1, 9),
    (1, 0): (5, 3),
    (1, 1): (1, 9),
    (0, 0): (3, 9),
}
TABLES = (
    "experiments",
    "trials",
    "trial_epochs",
    "rungs",
    "checkpoints",
    "mop_jobs",
    "training_requests",
)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[str]:
    """A Dask cluster the runs share (one worker per partition), named ``shared`` in the
    deployment's list (``AUTOML_DASK_CLUSTERS``): a run picks it by that name."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        old = os.environ.get("AUTOML_DASK_CLUSTERS")
        os.environ["AUTOML_DASK_CLUSTERS"] = json.dumps({"shared": cluster.scheduler_address})
        try:
            yield cluster.scheduler_address
        finally:
            if old is None:
                os.environ.pop("AUTOML_DASK_CLUSTERS", None)
            else:
                os.environ["AUTOML_DASK_CLUSTERS"] = old


@pytest.fixture(scope="module")
def dags(dask_cluster: str) -> dict[str, DAG]:
    return DagBag(dag_folder=str(DAGS)).dags


def fresh_dag(dag_id: str) -> DAG:
    """The DAG parsed anew, for a run whose conf must not reach later tests: a conf
    carried over into the next run of the module's shared DAG objects (a test's
    ``export_to`` failed the embedded-default run that followed it)."""
    return DagBag(dag_folder=str(DAGS)).dags[dag_id]


def run(dag: DAG, conf: dict[str, Any], **kwargs: Any) -> Any:
    dag_run = dag.test(run_conf=conf, **kwargs)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", f"{dag.dag_id} ended {dag_run.state}: {states}"
    assert set(states.values()) == {"success"}, states
    return dag_run


def query(url: str | None, sql: str, args: tuple = ()) -> list[tuple]:
    from automl_core.store.connection import connect

    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def counts(url: str | None, experiment: str) -> dict[str, int]:
    (exp_id,) = query(url, "SELECT id FROM automl.experiments WHERE name = %s", (experiment,))[0]
    out = {}
    for table in TABLES:
        column = "id" if table == "experiments" else "experiment_id"
        # Table names come from the constant above, never from input.
        out[table] = query(
            url, f"SELECT count(*) FROM automl.{table} WHERE {column} = %s", (exp_id,)
        )[0][0]
    return out


def check_hyperband_results(url: str | None, experiment: str, home: Path) -> None:
    rows = query(
        url,
        "SELECT r.bracket, r.rung, count(*), min(r.target_epochs), max(r.target_epochs), "
        "count(r.promoted) FROM automl.rungs r JOIN automl.experiments e "
        "ON e.id = r.experiment_id WHERE e.name = %s GROUP BY 1, 2",
        (experiment,),
    )
    found = {(b, r): (n, lo) for b, r, n, lo, hi, _ in rows if lo == hi}
    assert found == HYPERBAND_RUNGS
    # Every rung was decided by a promotion task (promoted is set, also on the last rung).
    assert all(decided == n for _, _, n, _, _, decided in rows)
    # Each trial was trained exactly to the r_i of the last rung it reached.
    reached = query(
        url,
        "SELECT t.trial_id, max(r.target_epochs), max(te.epoch), count(DISTINCT te.epoch) "
        "FROM automl.trials t JOIN automl.experiments e ON e.id = t.experiment_id "
        "JOIN automl.rungs r ON r.experiment_id = t.experiment_id AND r.trial_id = t.trial_id "
        "LEFT JOIN automl.trial_epochs te ON te.experiment_id = t.experiment_id "
        "AND te.trial_id = t.trial_id WHERE e.name = %s GROUP BY 1",
        (experiment,),
    )
    assert len(reached) == sum(n for (_, r), (n, _) in HYPERBAND_RUNGS.items() if r == 0)
    for trial_id, target, last_epoch, n_epochs in reached:
        assert last_epoch == target, f"trial {trial_id} trained to {last_epoch}, not {target}"
        assert n_epochs == target, f"trial {trial_id} has {n_epochs} epoch rows, not {target}"
    status = query(url, "SELECT status FROM automl.experiments WHERE name = %s", (experiment,))
    assert status == [("completed",)]
    reports = list((home / "reports" / experiment).rglob("*.html"))
    assert reports, f"no HTML report under {home / 'reports' / experiment}"


@pytest.mark.timeout(600)  # a whole example DAG under dag.test(); the first also migrates
def test_hyperband_example_runs_and_a_rerun_adds_nothing(
    dags: dict[str, DAG], db_url: str, airflow_db: Path, automl_home: Path, dask_cluster: str
) -> None:
    dag = dags["automl_hyperband_digits"]
    conf = {"seed": 1, "cluster": "shared"}
    first = run(dag, conf)
    experiment = first.get_task_instance("create_experiment").xcom_pull(
        task_ids="create_experiment"
    )["name"]
    assert first.run_id in experiment  # the default name comes from the run id
    check_hyperband_results(db_url, experiment, automl_home)
    before = counts(db_url, experiment)
    # Promoted trials resume: 9*1 + 3*2 + 1*6 (s=2) + 5*3 + 1*6 (s=1) + 3*9 (s=0).
    assert before["trial_epochs"] == 69
    assert before["mop_jobs"] > 0

    # Clear and re-run the same DAG run (same run id, so the same experiment): every task
    # runs again and finds its work done in the database.
    again = run(dag, conf, logical_date=first.logical_date, run_after=first.run_after)
    assert again.run_id == first.run_id
    assert counts(db_url, experiment) == before


@pytest.mark.timeout(600)  # a whole example DAG under dag.test(); the first also migrates
def test_hyperopt_example_runs_batches_in_sequence(
    dags: dict[str, DAG], db_url: str, airflow_db: Path, automl_home: Path, dask_cluster: str
) -> None:
    conf = {"epochs": 2, "experiment_name": "hyperopt-dagtest", "cluster": "shared"}
    run(dags["automl_hyperopt_digits"], conf)
    rows = query(
        db_url,
        "SELECT t.batch, count(*), min(t.status), max(t.status) FROM automl.trials t "
        "JOIN automl.experiments e ON e.id = t.experiment_id WHERE e.name = %s GROUP BY 1",
        ("hyperopt-dagtest",),
    )
    assert sorted(rows) == [(b, 4, "completed", "completed") for b in range(3)]
    epochs = query(
        db_url,
        "SELECT te.trial_id, max(te.epoch) FROM automl.trial_epochs te JOIN automl.experiments e "
        "ON e.id = te.experiment_id WHERE e.name = %s GROUP BY 1",
        ("hyperopt-dagtest",),
    )
    assert len(epochs) == 12 and {e for _, e in epochs} == {2}
    # Later batches were proposed after earlier ones finished: created in batch order.
    order = query(
        db_url,
        "SELECT t.batch, min(t.created_at), max(t.created_at) FROM automl.trials t "
        "JOIN automl.experiments e ON e.id = t.experiment_id WHERE e.name = %s "
        "GROUP BY 1 ORDER BY 1",
        ("hyperopt-dagtest",),
    )
    for (_, _, end), (_, start, _) in zip(order, order[1:], strict=False):
        assert start > end


@pytest.mark.timeout(600)  # a whole example DAG under dag.test(); the first also migrates
def test_a_conf_key_that_is_no_param_fails_before_anything_is_written(
    dags: dict[str, DAG], db_url: str, airflow_db: Path, automl_home: Path
) -> None:
    # Airflow accepts unknown conf keys; validate_conf refuses them (R fixes the shape).
    dag_run = fresh_dag("automl_hyperband_digits").test(run_conf={"R": 27})
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert dag_run.state == "failed"
    assert states["validate_conf"] == "failed"
    assert states["prepare_data"] == "upstream_failed"
    schema = query(db_url, "SELECT to_regclass('automl.experiments')")
    assert schema == [(None,)], "a run with a bad conf wrote to the database"


@pytest.mark.timeout(600)  # a whole example DAG under dag.test(); the first also migrates
def test_an_export_folder_holding_files_automl_did_not_write_fails_the_run_first(
    dags: dict[str, DAG], db_url: str, airflow_db: Path, automl_home: Path
) -> None:
    # Found only by finalize before, after the whole search.
    target = automl_home / "exports" / "theirs"
    target.mkdir(parents=True)
    (target / "model.pt").write_bytes(b"someone else's weights")
    dag_run = fresh_dag("automl_hyperband_digits").test(run_conf={"export_to": "exports/theirs"})
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["validate_conf"] == "failed"
    assert states["prepare_data"] == "upstream_failed"
    assert (target / "model.pt").read_bytes() == b"someone else's weights"


@pytest.mark.timeout(600)  # a whole example DAG under dag.test(); the first also migrates
def test_an_s3_export_to_a_missing_bucket_fails_the_run_first(
    dags: dict[str, DAG], db_url: str, airflow_db: Path, automl_home: Path, s3_env: str
) -> None:
    # Found only by finalize before, after the whole search.
    conf = {"export_to": "s3://no-such-bucket/digits"}
    dag_run = fresh_dag("automl_hyperband_digits").test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["validate_conf"] == "failed"
    assert states["prepare_data"] == "upstream_failed"
    assert query(db_url, "SELECT to_regclass('public.digits')") == [(None,)]


@pytest.mark.timeout(600)  # a whole example DAG under dag.test(); the first also migrates
def test_a_name_taken_by_another_search_fails_the_run_before_the_data_is_packed(
    dags: dict[str, DAG], db_url: str, airflow_db: Path, automl_home: Path
) -> None:
    # Found only by create_experiment before, after prepare_data had loaded and packed.
    from automl_core.store import repository as repo
    from automl_core.store.connection import connect
    from automl_core.store.migrations import migrate

    conn = connect(db_url)
    try:
        migrate(conn)
        theirs = repo.create_experiment(
            conn, name="taken", method="random", dataset="other", spec={"space": {}}, seed=7
        )
    finally:
        conn.close()
    dag_run = fresh_dag("automl_hyperband_digits").test(run_conf={"experiment_name": "taken"})
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states["validate_conf"] == "failed"
    assert states["prepare_data"] == "upstream_failed"
    assert query(db_url, "SELECT to_regclass('public.digits')") == [(None,)]
    experiments = query(db_url, "SELECT id, name, method, seed FROM automl.experiments")
    assert experiments == [(theirs.id, "taken", "random", 7)]


@pytest.fixture
def embedded_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """AUTOML_DB_URL unset and a fresh AUTOML_HOME: automl_core starts its own server.

    Run as root, the embedded server runs as an unprivileged account, which must be able
    to reach the folder: a world-readable temp folder, not pytest's private one.
    """
    home = Path(tempfile.mkdtemp(prefix="automl-embedded-"))
    home.chmod(0o755)
    monkeypatch.delenv("AUTOML_DB_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_AUTOML_DB", raising=False)
    monkeypatch.setenv("AUTOML_HOME", str(home))
    yield home
    from automl_core.embedded_server import server as embedded

    embedded.stop(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.timeout(600)  # a whole example DAG under dag.test(); the first also migrates
def test_hyperband_example_runs_on_the_embedded_default(
    dags: dict[str, DAG], airflow_db: Path, embedded_home: Path
) -> None:
    assert "AUTOML_DB_URL" not in os.environ
    run(dags["automl_hyperband_digits"], {"experiment_name": "embedded-hyperband"})
    check_hyperband_results(None, "embedded-hyperband", embedded_home)
    # The data and the results live in the server inside the project home.
    from automl_core.embedded_server import server as embedded

    assert embedded.server_info(embedded_home) is not None
    assert embedded.layout(embedded_home).data.is_dir()
    assert query(None, "SELECT count(*) FROM digits")[0][0] == 1797
