"""An existing Dask cluster is used only through workers with exactly one thread.

A worker with two threads runs two jobs at once in one process: two models on one
worker (MOP allows one) and torch's process-wide RNG shared between them, so a seed
stops repeating a search. Such a cluster is refused before anything trains; a worker
with two threads that joins mid-run is left idle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from automl_core.executors.dask_executor import DaskExecutor
from automl_core.executors.dask_worker import DataRef
from automl_core.mop.executor import JobResult
from automl_core.mop.types import Job, JobKind
from automl_core.store import repository as repo

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"architecture": "mlp", "hidden": 32, "optimizer": "sgd", "lr": 0.1, "batch_size": 64}
JOIN_DEADLINE_S = 60.0
JOBS_DEADLINE_S = 60.0


@contextlib.contextmanager
def cluster_of(n_workers: int, threads: int) -> Iterator[Any]:
    """Real worker processes with ``threads`` threads each, as an existing cluster."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # a free port (None would mean 8787, maybe taken)
        memory_limit=0,
        silence_logs=logging.WARNING,
    )
    try:
        yield cluster
    finally:
        cluster.close(timeout=30)


@pytest.mark.timeout(120)
def test_a_cluster_with_two_thread_workers_is_refused_before_anything_trains(
    digits_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    import yaml

    from automl_core.cli import main

    space_file = tmp_path / "space.yaml"
    space_file.write_text(yaml.safe_dump(dict(CONFIG, hidden=[32, 64])))
    monkeypatch.setenv("AUTOML_DB_URL", digits_url)
    argv = ["run", "--data", "digits", "--space", str(space_file), "--method", "grid"]
    with cluster_of(2, threads=2) as cluster:
        address = cluster.scheduler_address
        workers = sorted(cluster.scheduler.workers)
        argv += ["--epochs", "1", "--name", "two-threads", "--no-progress", "--cluster", address]
        code = main(argv)
        # Not a single task reached the cluster: no warm-up, no job.
        assert not cluster.scheduler.task_prefixes
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"error: The Dask cluster at {address} has workers without")
    for worker in workers:
        assert f"{worker} (2 threads)" in err[-1]
    assert "--nthreads 1" in err[-1]
    conn = psycopg2.connect(digits_url)
    try:
        exp = repo.get_experiment(conn, "two-threads")
        assert repo.jobs(conn, exp.id) == []
        assert repo.epochs(conn, exp.id) == []
    finally:
        conn.close()


@contextlib.contextmanager
def two_thread_worker(address: str) -> Iterator[subprocess.Popen]:
    """A `dask worker --nthreads 2` process that joins the cluster at ``address``."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    cmd = [sys.executable, "-m", "dask", "worker", address, "--nthreads", "2"]
    cmd += ["--no-dashboard", "--no-nanny", "--host", "127.0.0.1", "--memory-limit", "0"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.timeout(180)
def test_a_two_thread_worker_that_joins_mid_run_gets_no_partition_and_no_job(
    digits_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from automl_core.data.reader import dataset_info

    conn = psycopg2.connect(digits_url)
    try:
        info = dataset_info(conn, "digits")
    finally:
        conn.close()
    data = DataRef(digits_url, "digits", tuple(info.feature_shape), info.num_classes)
    with cluster_of(1, threads=1) as cluster:
        (first,) = cluster.scheduler.workers
        executor = DaskExecutor(data, [0, 1], seed=0, address=cluster.scheduler_address)
        try:
            assert executor.queues_jobs
            with two_thread_worker(cluster.scheduler_address) as proc:
                deadline = time.monotonic() + JOIN_DEADLINE_S
                while len(cluster.scheduler.workers) < 2:
                    assert proc.poll() is None, "the dask worker process ended"
                    assert time.monotonic() < deadline, "the two-thread worker did not join"
                    time.sleep(0.2)
                (joiner,) = set(cluster.scheduler.workers) - {first}
                with caplog.at_level(logging.WARNING):
                    executor._poll_workers()  # what wait() does every LIVENESS_POLL_S
                # The first worker holds both partitions, yet nothing is readied on the
                # joiner to take one over.
                assert [executor.owner(p) for p in (0, 1)] == [first, first]
                assert joiner not in executor._warming
                warned = [r.getMessage() for r in caplog.records if joiner in r.getMessage()]
                assert len(warned) == 1
                assert f"{joiner} (2 threads)" in warned[0] and "--nthreads 1" in warned[0]
                for p in (0, 1):
                    executor.submit(Job(p, p, 1, JobKind.TRAIN), CONFIG, None)
                results: list[JobResult] = []
                deadline = time.monotonic() + JOBS_DEADLINE_S
                while len(results) < 2:
                    assert time.monotonic() < deadline, f"jobs did not end: {results}"
                    results += executor.wait(timeout=1.0)
                assert [(r.error, r.worker) for r in results] == [(None, first)] * 2
                assert not cluster.scheduler.workers[joiner].processing
                assert not cluster.scheduler.workers[joiner].has_what
        finally:
            executor.close()
