"""Airflow's REST API (v2) drives the Hyperband DAG: bad confs refused, a good run succeeds.

The server is ``airflow standalone`` from the session fixture; the run uses the default
training path (the engine task starts one local Dask cluster for the run) and reaches the
results database through the ``automl_db`` Airflow connection.
"""

from __future__ import annotations

import pytest

from tests.e2e.airflow_server import HYPERBAND_DAG, AirflowStandalone, overlap

# Hyperband R=9, eta=3: 9 + 5 + 3 configurations in brackets s = 2, 1, 0.
HYPERBAND_TRIALS = 17


def engine_and_jobs(url: str, experiment: str) -> tuple[tuple[int, bool], list[tuple]]:
    """(engine starts, engine stopped) and the job log as (bracket, trial, worker, start, end)."""
    from automl_core.store.connection import connect

    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT g.starts, g.stopped_at IS NOT NULL FROM automl.engines g "
                "JOIN automl.experiments e ON e.id = g.experiment_id WHERE e.name = %s",
                (experiment,),
            )
            engine = cur.fetchone()
            cur.execute(
                "SELECT t.bracket, j.trial_id, j.worker, j.started_at, j.ended_at "
                "FROM automl.mop_jobs j JOIN automl.experiments e ON e.id = j.experiment_id "
                "JOIN automl.trials t ON t.experiment_id = j.experiment_id "
                "AND t.trial_id = j.trial_id WHERE e.name = %s",
                (experiment,),
            )
            return (engine[0], engine[1]), cur.fetchall()
    finally:
        conn.close()


# The first e2e test also pays for starting airflow standalone (several minutes).
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"table": "digits; DROP TABLE automl.trials"}, "table"),
        ({"seed": -1}, "seed"),
        # 7.0 is an integer to JSON Schema and to the task alike (docs/decisions.md); 7.5 is not.
        ({"seed": 7.5}, "seed"),
        ({"export_to": "../../etc"}, "export_to"),
        ({"cluster": "not-an-address"}, "cluster"),
        # A well-formed address is refused too: a run only names the deployment's clusters.
        ({"cluster": "tcp://203.0.113.5:8786"}, "cluster"),
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


@pytest.mark.timeout(900)
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


@pytest.mark.timeout(1200)  # the run may take up to 600 s
def test_a_run_triggered_through_the_api_succeeds_with_its_results_in_the_tables(
    airflow_server: AirflowStandalone, automl_db: str
) -> None:
    conf = {"seed": 2, "experiment_name": "rest-hyperband"}
    reply = airflow_server.trigger(HYPERBAND_DAG, conf)
    assert reply.status_code == 200, reply.text
    run_id = reply.json()["dag_run_id"]
    assert reply.json()["conf"] == conf

    run = airflow_server.wait_for_run(HYPERBAND_DAG, run_id, timeout=600)
    states = airflow_server.task_states(HYPERBAND_DAG, run_id)
    assert run["state"] == "success", states
    assert len(states) == 17 and set(states.values()) == {"success"}

    # Brackets train at the same time: their rung tasks wait side by side, and jobs of
    # different brackets interleave on the workers of the one engine's one cluster.
    spans = airflow_server.task_spans(HYPERBAND_DAG, run_id)
    waits = [(t.split(".")[0], span) for t, span in spans.items() if ".train_rung_" in t]
    assert any(b1 != b2 and overlap(s1, s2) for b1, s1 in waits for b2, s2 in waits), (
        f"no two brackets' training tasks waited at the same time: {spans}"
    )
    engine, jobs = engine_and_jobs(automl_db, "rest-hyperband")
    assert engine == (1, True), "one engine, started once, ended"
    assert len({worker for _, _, worker, _, _ in jobs}) == 2, "one cluster: two workers"
    brackets = {(b, start, end) for b, _, _, start, end in jobs}
    assert any(
        b1 != b2 and overlap((s1, e1), (s2, e2))
        for b1, s1, e1 in brackets
        for b2, s2, e2 in brackets
    ), "no two brackets trained at the same time"

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

    # A waiting training task reads the engine task's state through the triggerer (so it
    # can fail at once when the engine task fails); it would warn if it could not.
    wait_logs = [airflow_server.task_log(HYPERBAND_DAG, run_id, t) for t in spans if "train" in t]
    assert any("The engine task of this run is running" in log for log in wait_logs), wait_logs
    assert not any("Could not read the state" in log for log in wait_logs)

    finalize_log = airflow_server.task_log(HYPERBAND_DAG, run_id, "finalize")
    assert "Report:" in finalize_log and "rest-hyperband" in finalize_log
