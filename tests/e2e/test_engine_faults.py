"""The engine task under ``airflow standalone``: killed mid-run, retried; tasks cleared.

A search whose engine process is SIGKILLed mid-run must end, after the task's retry, with
exactly the trials and epochs the search plan asks for, each once; clearing a training or
promotion task afterwards must add no row and change no decision; and the same search run
uninterrupted by ``automl run`` must measure the same metrics and promote the same trials.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest

from automl_core.experiment import SearchRequest, run_search, search_plan
from automl_core.mop.joblog import check_job_log
from automl_core.store import repository as repo
from automl_core.store.connection import connect
from tests.e2e.airflow_server import HYPERBAND_DAG, AirflowStandalone
from tests.search_outcome import check_seeded_order, search_outcome

EXPERIMENT = "rest-engine-kill"
TABLES = ("trials", "trial_epochs", "rungs", "checkpoints", "mop_jobs", "training_requests")


def table_counts(url: str, experiment_id: int) -> dict[str, int]:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            out = {}
            for table in TABLES:
                # Table names come from the constant above, never from input.
                cur.execute(
                    f"SELECT count(*) FROM automl.{table} WHERE experiment_id = %s",
                    (experiment_id,),
                )
                out[table] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


def epochs_recorded(url: str, experiment: str) -> int:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('automl.trial_epochs') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0  # the run has not created the schema yet
            cur.execute(
                "SELECT count(*) FROM automl.trial_epochs te JOIN automl.experiments e "
                "ON e.id = te.experiment_id WHERE e.name = %s",
                (experiment,),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def engine_pid(url: str, experiment: str) -> int | None:
    """The pid of the process that runs the experiment's engine (from its lease)."""
    conn = connect(url)
    try:
        lease = repo.get_engine(conn, repo.get_experiment(conn, experiment).id)
    finally:
        conn.close()
    return lease.pid if lease is not None and not lease.stopped else None


def wait_for(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached after {timeout} s")


@pytest.mark.timeout(900)
def test_a_killed_engine_is_retried_and_ends_with_the_rows_of_an_uninterrupted_run(
    airflow_server: AirflowStandalone, automl_db: str
) -> None:
    reply = airflow_server.trigger(HYPERBAND_DAG, {"seed": 3, "experiment_name": EXPERIMENT})
    assert reply.status_code == 200, reply.text
    run_id = reply.json()["dag_run_id"]

    # Kill the engine's process once it has trained some epochs, well before the end.
    wait_for("epochs trained", lambda: epochs_recorded(automl_db, EXPERIMENT) >= 8, 300)
    pid = engine_pid(automl_db, EXPERIMENT)
    assert pid is not None, "the engine is not running"
    os.kill(pid, signal.SIGKILL)

    run = airflow_server.wait_for_run(HYPERBAND_DAG, run_id, timeout=600)
    states = airflow_server.task_states(HYPERBAND_DAG, run_id)
    assert run["state"] == "success", states

    conn = connect(automl_db)
    try:
        exp = repo.get_experiment(conn, EXPERIMENT)
        engine = repo.get_engine(conn, exp.id)
        assert engine is not None and engine.starts == 2, "the retry resumed the engine"
        plan = search_plan(SearchRequest.from_spec(exp.dataset, exp.seed, exp.spec))
        models: list[tuple[int, int, int]] = []
        expected_epochs: dict[int, int] = {}
        for group in plan.groups:
            start = 0
            for step in group.rungs:
                members = repo.get_rung(conn, exp.id, group.index, step.rung)
                # Each rung holds the plan's number of trials, trained to its target.
                assert len(members) == step.n, (group.index, step.rung)
                for m in members:
                    models.append((m.trial_id, start, step.target_epoch))
                    expected_epochs[m.trial_id] = step.target_epoch
                start = step.target_epoch
        epochs = sorted((r.trial_id, r.epoch) for r in repo.epochs(conn, exp.id))
        assert epochs == sorted(
            (t, e) for t, last in expected_epochs.items() for e in range(1, last + 1)
        )
        log = [
            (j.trial_id, j.epoch, j.partition, j.kind, j.worker, j.started_at, j.ended_at)
            for j in repo.jobs(conn, exp.id)
        ]
        rungs_before = {
            (g.index, s.rung): repo.get_rung(conn, exp.id, g.index, s.rung)
            for g in plan.groups
            for s in g.rungs
        }
    finally:
        conn.close()
    # Every visit exactly once: the epochs in flight when it died were trained again and
    # overwrote their rows.
    # digits' validation is replicated: the last visit of an epoch evaluates, no EVAL jobs.
    check_job_log(log, models=models, partitions=[0, 1], evaluate=False)
    before = table_counts(automl_db, exp.id)

    # Clearing a training task and a promotion task re-runs them: nothing is added, the
    # same survivors are kept.
    cleared = airflow_server.api(
        "POST",
        f"/dags/{HYPERBAND_DAG}/clearTaskInstances",
        json={
            "dag_run_id": run_id,
            "task_ids": ["bracket_2.train_rung_1", "bracket_2.promote_rung_0"],
            "only_failed": False,
            "reset_dag_runs": True,
            "dry_run": False,
        },
    )
    assert cleared.status_code == 200, cleared.text
    wait_for(
        "the cleared tasks ran again",
        lambda: (
            airflow_server.task_states(HYPERBAND_DAG, run_id).get("bracket_2.train_rung_1")
            == "success"
            and airflow_server.task_states(HYPERBAND_DAG, run_id).get("bracket_2.promote_rung_0")
            == "success"
        ),
        300,
    )
    assert table_counts(automl_db, exp.id) == before
    conn = connect(automl_db)
    try:
        assert {key: repo.get_rung(conn, exp.id, *key) for key in rungs_before} == rungs_before
    finally:
        conn.close()

    # The same seed repeats the same search: `automl run`'s path, uninterrupted, on this
    # DAG's data and spec, measures every epoch exactly as the DAG whose engine was killed.
    dag_run = search_outcome(automl_db, EXPERIMENT)
    request = SearchRequest.from_spec(exp.dataset, exp.seed, exp.spec)
    run_search(
        dataclasses.replace(request, name=f"{EXPERIMENT}-cli"), progress=False, db_url=automl_db
    )
    cli_run = search_outcome(automl_db, f"{EXPERIMENT}-cli")
    assert cli_run.metrics == dag_run.metrics
    assert cli_run.rungs == dag_run.rungs
    assert cli_run.best_trial == dag_run.best_trial
    check_seeded_order(dag_run, [0, 1])
