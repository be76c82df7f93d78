"""The hopper runner on the simulated executor: what it writes, resumes and retries."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from automl_core.executors.simulated import SimulatedExecutor, check_job_log
from automl_core.mop.runner import (
    EpochMetrics,
    HopperRunner,
    JobRecord,
    TrainingError,
    TrainingTarget,
)
from automl_core.mop.types import Job, JobKind


class MemorySink:
    def __init__(self) -> None:
        self.jobs: dict[tuple[int, int, int, str], JobRecord] = {}
        self.epochs: dict[tuple[int, int], EpochMetrics] = {}
        self.checkpoints: dict[int, tuple[int, bytes]] = {}

    def record_jobs(self, rows: Sequence[JobRecord]) -> None:
        for r in rows:
            self.jobs[(r.trial_id, r.epoch, r.partition, r.kind)] = r

    def record_epoch(self, trial_id: int, epoch: int, metrics: EpochMetrics, state: bytes) -> None:
        self.epochs[(trial_id, epoch)] = metrics
        self.checkpoints[trial_id] = (epoch, state)

    def load_checkpoint(self, trial_id: int) -> tuple[int, bytes | None]:
        return self.checkpoints.get(trial_id, (0, None))


def cost(job: Job) -> float:
    # Models of very different speeds; evaluation is cheaper than training.
    return (1.0 + job.model_id * 3.0) * (0.25 if job.kind is JobKind.EVAL else 1.0)


def targets(n: int, epochs: int) -> list[TrainingTarget]:
    return [TrainingTarget(t, {"lr": 0.1}, 0, epochs) for t in range(n)]


def test_every_epoch_of_every_trial_is_written_once_with_a_valid_job_log() -> None:
    sink = MemorySink()
    executor = SimulatedExecutor([0, 1, 2], cost)
    summary = HopperRunner(executor, sink, seed=1).run(targets(5, 2))

    assert sorted(summary.completed) == list(range(5))
    assert set(sink.epochs) == {(t, e) for t in range(5) for e in (1, 2)}
    assert len(sink.jobs) == 5 * 2 * 3 * 2  # trials x epochs x partitions x (train, eval)
    rows = [
        (r.trial_id, r.epoch, r.partition, r.kind, r.worker, r.started_at, r.ended_at)
        for r in sink.jobs.values()
    ]
    check_job_log(rows, models=[(t, 0, 2) for t in range(5)], partitions=[0, 1, 2], evaluate=True)
    assert all(m.valid_accuracy is not None for m in sink.epochs.values())


def test_models_added_when_others_finish_continue_from_their_epoch() -> None:
    sink = MemorySink()
    executor = SimulatedExecutor([0, 1], cost)
    promoted: list[int] = []

    def on_done(trial_id: int, epoch: int) -> list[TrainingTarget]:
        if epoch == 1 and trial_id in (0, 1):
            promoted.append(trial_id)
            return [TrainingTarget(trial_id, {"lr": 0.1}, 1, 3)]
        return []

    HopperRunner(executor, sink, seed=0).run(targets(3, 1), on_done)
    assert sorted(promoted) == [0, 1]
    assert {(t, e) for t, e in sink.epochs} == {
        (0, 1),
        (1, 1),
        (2, 1),
        (0, 2),
        (0, 3),
        (1, 2),
        (1, 3),
    }


def test_failed_jobs_are_retried_and_lost_states_restart_the_epoch() -> None:
    sink = MemorySink()
    failed: set[Job] = set()

    def fail_once(job: Job) -> bool:
        if job.partition == 1 and job.epoch == 2 and job not in failed:
            failed.add(job)
            return True
        return False

    executor = SimulatedExecutor([0, 1], cost, fail=fail_once, lose_state=lambda j: j.model_id == 0)
    summary = HopperRunner(executor, sink, seed=3).run(targets(2, 3))
    assert summary.failed_jobs == len(failed) > 0
    assert summary.resets >= 1
    assert set(sink.epochs) == {(t, e) for t in range(2) for e in (1, 2, 3)}


def test_a_job_that_keeps_failing_stops_the_run_with_its_error() -> None:
    executor = SimulatedExecutor([0, 1], cost, fail=lambda job: job.model_id == 1)
    with pytest.raises(TrainingError, match="trial 1"):
        HopperRunner(executor, MemorySink(), seed=0, max_failures=2).run(targets(2, 1))
