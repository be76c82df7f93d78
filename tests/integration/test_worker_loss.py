"""Losing a Dask worker mid-search: the work reruns elsewhere, nothing hangs or repeats.

A worker is killed (SIGKILL; its nanny starts a fresh one at a new address) at several
points of a small Hyperband-shaped run: three trials train one epoch (rung 0), then two
are promoted and continue from their held states to epoch 3 (rung 1). Each run must end
in seconds with exactly the job log and epoch rows of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

import psutil
import psycopg2
import pytest

from automl_core.executors.dask_executor import DaskExecutor
from automl_core.executors.dask_worker import DataRef
from automl_core.experiment.sink import DatabaseSink
from automl_core.mop.joblog import check_job_log
from automl_core.mop.runner import EpochMetrics, HopperRunner, TrainingTarget
from automl_core.mop.visit_order import train_order
from automl_core.store import repository as repo

CONFIG = {"architecture": "mlp", "hidden": 512, "optimizer": "sgd", "lr": 0.05, "batch_size": 32}
RUNG0, PROMOTED, TARGET = [0, 1, 2], [0, 1], 3
EXPECTED_MODELS = [(t, 0, 1) for t in RUNG0] + [(t, 1, TARGET) for t in PROMOTED]
EXPECTED_EPOCHS = sorted(
    [(t, 1) for t in RUNG0] + [(t, e) for t in PROMOTED for e in range(2, TARGET + 1)]
)
# in the first epoch | right after an epoch of a promoted trial ends | right after a rung ends
KILL_POINTS = ["first-epoch", "epoch-end", "rung-end"]
# After the k-th of the run's 28 job results, through to its last epoch (job-25 to 27);
# "job-k+m": a second worker dies after the m-th result, the first one's replacement or
# the other.
JOB_KILL_POINTS = [f"job-{k}" for k in (1, 2, 5, 8, 11, 13, 14, 17, 20, 23, 25, 26, 27)] + [
    "job-3+6", "job-9+12", "job-15+19", "job-21+24",
]  # fmt: skip


class _Sink(DatabaseSink):
    """The experiment's database sink, with a hook after each epoch is written (the
    writer thread is flushed first, so a kill there comes after the epoch is saved)."""

    def __init__(self, conn: Any, experiment_id: int) -> None:
        super().__init__(conn, experiment_id)
        self.after_epoch: Callable[[int, int], None] = lambda trial, epoch: None

    def record_epoch(self, trial_id: int, epoch: int, metrics: EpochMetrics, state: bytes) -> None:
        super().record_epoch(trial_id, epoch, metrics, state)
        self.flush()
        self.after_epoch(trial_id, epoch)


class _Killer:
    """Kills worker processes (SIGKILL; each nanny starts a fresh worker that rejoins)."""

    def __init__(self) -> None:
        self.killed: list[str] = []
        self.at = 0.0

    def kill(self, worker: str | None, *, limit: int = 1) -> None:
        if len(self.killed) >= limit or worker is None:
            return
        self.killed.append(worker)
        self.at = time.monotonic()
        os.kill(_worker_pid(worker), signal.SIGKILL)


def _worker_pid(address: str) -> int:
    """The pid of the local worker at ``address``: the process listening on its port."""
    port = int(address.rsplit(":", 1)[1])
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr.port == port
                for c in child.net_connections(kind="tcp")
            ):
                return child.pid
    raise AssertionError(f"no local process runs the worker {address}")


def _arm(when: str, executor: DaskExecutor, sink: _Sink, killer: _Killer) -> Callable:
    """Set the kill up at ``when``; returns the on_model_done callback (the promotion)."""
    rung0_done: list[int] = []

    if when.startswith("job-"):
        # After the k-th job result (and the m-th: a second worker loss), kill the worker
        # that holds partition k % 2; its job in flight, if any, dies with it.
        thresholds = [int(k) for k in when.removeprefix("job-").split("+")]
        wait, seen = executor.wait, [0]

        def wait_then_kill_at(timeout: float | None = None) -> list:
            results = wait(timeout)
            seen[0] += len(results)
            due = [k for k in thresholds if k <= seen[0]]
            if len(due) > len(killer.killed):
                killer.kill(executor.owner(due[-1] % 2), limit=len(due))
            return results

        executor.wait = wait_then_kill_at  # type: ignore[method-assign]
    elif when == "first-epoch":
        wait = executor.wait

        def wait_then_kill(timeout: float | None = None) -> list:
            results = wait(timeout)
            if results:  # a job of epoch 1 ended; others run on both workers
                killer.kill(executor.owner(1))
            return results

        executor.wait = wait_then_kill  # type: ignore[method-assign]
    elif when == "epoch-end":
        # Epoch 2 of a promoted trial is written: its state, which epoch 3 starts from, dies.
        def kill_after(trial: int, epoch: int) -> None:
            if epoch == 2:
                killer.kill(executor.state_worker(trial))

        sink.after_epoch = kill_after

    def on_model_done(trial: int, epoch: int) -> Iterable[TrainingTarget]:
        if epoch != 1:
            return []
        if when == "rung-end" and not rung0_done:
            # The trial's held state dies while it waits for its promotion.
            killer.kill(executor.state_worker(trial))
        rung0_done.append(trial)
        if sorted(rung0_done) != RUNG0:
            return []
        return [TrainingTarget(t, CONFIG, 1, TARGET) for t in PROMOTED]

    return on_model_done


def _run(url: str, name: str, when: str | None) -> dict[str, Any]:
    """Run the Hyperband-shaped search, killing a worker at ``when`` (None: never)."""
    conn = psycopg2.connect(url)
    exp = repo.create_experiment(
        conn, name=name, method="hyperband", dataset="digits", spec={"space": CONFIG}, seed=0
    )
    from automl_core.data.reader import dataset_info

    info = dataset_info(conn, "digits")
    data = DataRef(url, "digits", tuple(info.feature_shape), info.num_classes)
    repo.upsert_trials(conn, exp.id, [repo.TrialRow(t, CONFIG) for t in RUNG0])
    sink = _Sink(conn, exp.id)
    executor = DaskExecutor(data, [0, 1], seed=0)
    try:
        killer = _Killer()
        on_model_done = _arm(when or "", executor, sink, killer)
        started = time.monotonic()
        runner = HopperRunner(executor, sink, seed=0)
        summary = runner.run([TrainingTarget(t, CONFIG, 0, 1) for t in RUNG0], on_model_done)
        elapsed = time.monotonic() - started
    finally:
        sink.close()  # everything handed over is written before it is read back
        executor.close()
    rows = [
        (j.trial_id, j.epoch, j.partition, j.kind, j.worker, j.started_at, j.ended_at)
        for j in repo.jobs(conn, exp.id)
    ]
    metrics = {
        (r.trial_id, r.epoch): (r.train_loss, r.train_accuracy, r.valid_loss, r.valid_accuracy)
        for r in repo.epochs(conn, exp.id)
    }
    conn.close()
    return {
        "summary": summary, "rows": rows, "metrics": metrics, "killed": killer.killed,
        "elapsed": elapsed,
    }  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(digits_url: str) -> dict[str, Any]:
    return _run(digits_url, "worker-loss-none", None)


def _check_complete(run: dict[str, Any], uninterrupted: dict[str, Any]) -> None:
    """Every trial reached its target, each visit once and in its seeded order, with the
    metrics of the run without a loss (a lost worker costs time, never a result)."""
    assert sorted(run["summary"].completed) == sorted(RUNG0 + PROMOTED)
    check_job_log(
        run["rows"],
        models=EXPECTED_MODELS,
        partitions=[0, 1],
        evaluate=True,
        train_order=lambda m, e: train_order(0, m, e, [0, 1]),
    )
    assert run["metrics"] == uninterrupted["metrics"]
    assert run["elapsed"] < 60, f"the run took {run['elapsed']:.1f} s after losing {run['killed']}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("when", KILL_POINTS)
def test_losing_a_worker_mid_run_reruns_its_work_elsewhere(
    digits_url: str, when: str, uninterrupted: dict[str, Any]
) -> None:
    run = _run(digits_url, f"worker-loss-{when}", when)
    summary = run["summary"]
    assert run["killed"], f"no worker was killed at {when}"
    assert summary.failed_jobs + summary.resets > 0
    assert sorted(run["metrics"]) == EXPECTED_EPOCHS
    assert len(run["rows"]) == len(EXPECTED_EPOCHS) * 2 * 2  # epochs x partitions x 2 passes
    _check_complete(run, uninterrupted)


@pytest.mark.fault
@pytest.mark.timeout(120)
@pytest.mark.parametrize("when", JOB_KILL_POINTS)
def test_a_worker_killed_at_any_point_costs_at_most_its_epochs_in_flight(
    digits_url: str, when: str, uninterrupted: dict[str, Any]
) -> None:
    run = _run(digits_url, f"worker-loss-{when}", when)
    summary = run["summary"]
    assert len(run["killed"]) == when.count("+") + 1, f"kills at {when}: {run['killed']}"
    _check_complete(run, uninterrupted)
    # Each loss redoes at most the epochs whose latest state lived on the dead worker
    # (one per trial, at most the 3 trials of the run).
    redone = summary.epochs_trained - len(EXPECTED_EPOCHS)
    assert 0 <= redone <= 3 * len(run["killed"]), redone
