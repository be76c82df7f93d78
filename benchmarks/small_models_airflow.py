"""The many-small-models search through ``airflow standalone`` and its REST API.

Part of ``bench_small_models.py`` (``--airflow``): triggers the DAG once per experiment
name on one server and reads each run's task timeline back from the REST API.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_databases import create_database, drop_database
from process_memory import PssSampler
from small_models_common import DAG_ID, SEED, mean


def run_airflow(db_url: str, names: list[str], tmp: Path, timeout: float) -> list[dict[str, Any]]:
    """The same search through ``airflow standalone`` and its REST API, once per name
    (one after the other, on the same server), then a clean stop.

    Set up as tests/e2e/conftest.py does: PostgreSQL metadata in a fresh database, the
    results database as the ``automl_db`` connection, the ``automl_training`` pool.
    """
    from tests.e2e.airflow_server import AirflowStandalone, session_processes

    metadata = create_database("automl_bench_airflow")
    home = Path(tempfile.mkdtemp(prefix="airflow-", dir=tmp))
    server = AirflowStandalone(
        home=home,
        metadata_url=metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        env_extra={"AIRFLOW_CONN_AUTOML_DB": db_url, "AUTOML_HOME": str(tmp / "automl_home")},
    )
    out: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        server.start()
        server.wait_for_dag(DAG_ID)
        server.unpause(DAG_ID)
        startup = time.perf_counter() - started
        for name in names:
            out.append({"startup_s": startup, **_trigger_and_wait(server, name, timeout)})
    finally:
        stragglers = server.stop()
        left = session_processes(server.process.pid) if server.process else []
        drop_database(metadata)
    for run in out:
        run["needed_sigkill"] = stragglers
    if left:
        raise SystemExit(f"processes of airflow standalone left running: {left}")
    return out


def _trigger_and_wait(server: Any, name: str, timeout: float) -> dict[str, Any]:
    """Trigger the DAG with a conf and poll every second until the run ends."""
    start = time.perf_counter()
    reply = server.trigger(DAG_ID, {"seed": SEED, "experiment_name": name})
    if reply.status_code not in (200, 201):
        raise SystemExit(f"trigger failed: {reply.status_code} {reply.text}")
    run_id = reply.json()["dag_run_id"]
    with PssSampler(server.process.pid) as sampler:
        while True:
            run = server.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                break
            if time.perf_counter() - start > timeout:
                raise SystemExit(
                    f"run {run_id} not done after {timeout} s: {server.task_states(DAG_ID, run_id)}"
                )
            time.sleep(1)
    wall = time.perf_counter() - start
    if run["state"] != "success":
        raise SystemExit(f"run {run_id} failed: {server.task_states(DAG_ID, run_id)}")
    run_s = (_iso(run["end_date"]) - _iso(run["start_date"])).total_seconds()
    return {
        "wall": wall,
        "run_s": run_s,
        "run_start": _iso(run["start_date"]).timestamp(),
        "tasks": _task_timeline(server, run_id),
        "peak_pss_mb": sampler.peak / 1e6,
        "load": mean(sampler.loads),
        "run_id": run_id,
    }


def _task_timeline(server: Any, run_id: str) -> dict[str, dict[str, float | None]]:
    """Task id -> its queued, start and end times (epoch seconds; None if not reached)."""
    reply = server.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
    )
    return {
        t["task_id"]: {
            k: _iso(t[f]).timestamp() if t.get(f) else None
            for k, f in (("queued", "queued_when"), ("start", "start_date"), ("end", "end_date"))
        }
        for t in reply.json().get("task_instances", [])
    }


def airflow_timeline(af: Mapping[str, Any]) -> str:
    """Where the DAG run's wall time went: the tasks outside the groups, the job log's
    span and the groups' last task, in seconds from the run's start."""
    t0, tasks, figures = af["run_start"], af["tasks"], af["figures"]

    def at(value: float | None) -> str:
        return "-" if value is None else f"{value - t0:6.1f}"

    lines = ["task                 queued   start     end"]
    for task_id in ("validate_conf", "prepare_data", "create_experiment", "engine", "finalize"):
        if task_id in tasks:
            t = tasks[task_id]
            lines.append(f"{task_id:<18} {at(t['queued'])}  {at(t['start'])}  {at(t['end'])}")
    grouped = [t["end"] for k, t in tasks.items() if "." in k and t["end"] is not None]
    if grouped:
        lines.append(f"{'last group task':<18} {'':>6}  {'':>6}  {at(max(grouped))}")
    if figures["jobs"]:
        lines.append(
            f"{'job log':<18} {'':>6}  {at(figures['first_job'])}  {at(figures['last_job'])}"
        )
    return "\n".join(lines)


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
