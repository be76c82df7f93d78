"""Airflow's REST API (v2) drives the Hyperband DAG: bad confs refused, a good run succeeds.

The server is ``airflow standalone`` from the session fixture; the run uses the default
training path (each training task starts its own local Dask cluster) and reaches the
results database through the ``automl_db`` Airflow connection.
"""

from __future__ import annotations

import pytest

from tests.e2e.airflow_server import HYPERBAND_DAG, AirflowStandalone

# Hyperband R=9, eta=3: 9 + 5 + 3 configurations in brackets s = 2, 1, 0.
HYPERBAND_TRIALS = 17


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"table": "digits; DROP TABLE automl.trials"}, "table"),
        ({"seed": -1}, "seed"),
        ({"export_to": "../../etc"}, "export_to"),
        ({"cluster": "not-an-address"}, "cluster"),
        ({"load_if_missing": "csv:/etc/passwd"}, "load_if_missing"),
    ],
)
def test_a_bad_conf_is_rejected_with_400(
    airflow_server: AirflowStandalone, conf: dict, field: str
) -> None:
    before = airflow_server.api("GET", f"/dags/{HYPERBAND_DAG}/dagRuns").json()["total_entries"]
    reply = airflow_server.trigger(HYPERBAND_DAG, conf)
    assert reply.status_code == 400, reply.text
    assert f"Invalid input for param {field}" in reply.json()["detail"]
    after = airflow_server.api("GET", f"/dags/{HYPERBAND_DAG}/dagRuns").json()["total_entries"]
    assert after == before, "a rejected conf still created a run"


def test_a_conf_key_that_is_no_param_fails_the_run_before_training(
    airflow_server: AirflowStandalone,
) -> None:
    # Airflow accepts conf keys it has no Param for; validate_conf does not.
    reply = airflow_server.trigger(HYPERBAND_DAG, {"R": 27})
    assert reply.status_code == 200, reply.text
    run_id = reply.json()["dag_run_id"]
    run = airflow_server.wait_for_run(HYPERBAND_DAG, run_id, timeout=180)
    states = airflow_server.task_states(HYPERBAND_DAG, run_id)
    assert run["state"] == "failed", states
    assert states["validate_conf"] == "failed"
    assert states["prepare_data"] == "upstream_failed"
    assert all(s == "upstream_failed" for t, s in states.items() if "train" in t)
    log = airflow_server.task_log(HYPERBAND_DAG, run_id, "validate_conf")
    assert "conf field 'R' is not a parameter" in log


def test_a_run_triggered_through_the_api_succeeds_with_its_results_in_the_tables(
    airflow_server: AirflowStandalone, automl_db: str
) -> None:
    conf = {"seed": 2, "experiment_name": "rest-hyperband"}
    reply = airflow_server.trigger(HYPERBAND_DAG, conf)
    assert reply.status_code == 200, reply.text
    run_id = reply.json()["dag_run_id"]
    assert reply.json()["conf"] == conf

    # Measured ~70 s on 2 cores (19 tasks, training serialised by the 1-slot pool).
    run = airflow_server.wait_for_run(HYPERBAND_DAG, run_id, timeout=600)
    states = airflow_server.task_states(HYPERBAND_DAG, run_id)
    assert run["state"] == "success", states
    assert len(states) == 19 and set(states.values()) == {"success"}

    from automl_core.report.leaderboard import leaderboard
    from automl_core.store.connection import connect

    conn = connect(automl_db)
    try:
        board = leaderboard(conn, "rest-hyperband")
        with conn.cursor() as cur:
            cur.execute(
                "SELECT status, airflow_run_id, seed FROM automl.experiments WHERE name = %s",
                ("rest-hyperband",),
            )
            experiment = cur.fetchone()
    finally:
        conn.close()
    assert experiment == ("completed", run_id, 2)
    assert len(board) == HYPERBAND_TRIALS
    accuracy = board["best_valid_accuracy"].tolist()
    assert accuracy == sorted(accuracy, reverse=True)
    assert 0.5 < accuracy[0] <= 1.0  # digits: the best of 17 models learns something

    finalize_log = airflow_server.task_log(HYPERBAND_DAG, run_id, "finalize")
    assert "Report:" in finalize_log and "rest-hyperband" in finalize_log
