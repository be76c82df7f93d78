"""The hopper runner on the simulated executor: what it writes, resumes and retries."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from automl_core.executors.simulated import SimulatedExecutor, check_job_log
from automl_core.mop.executor import JobResult
from automl_core.mop.runner import (
    EpochMetrics,
    HopperRunner,
    TrainingError,
    TrainingTarget,
)
from automl_core.mop.types import Job, JobKind, JobRecord


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


def test_work_added_while_the_runner_steps_shares_the_workers() -> None:
    # What the engine does: add a rung's targets, step, add more when others finish.
    sink = MemorySink()
    executor = SimulatedExecutor([0, 1], cost)
    runner = HopperRunner(executor, sink, seed=2)
    runner.add(targets(2, 1))
    runner.step()
    runner.add([TrainingTarget(5, {"lr": 0.1}, 0, 2)])
    assert runner.is_training(5)
    while runner.busy:
        runner.step(timeout=1.0)
    assert not runner.is_training(5)
    assert set(sink.epochs) == {(0, 1), (1, 1), (5, 1), (5, 2)}
    assert runner.step() == 0  # nothing left: returns at once


def test_a_promoted_trial_continues_from_its_held_state_and_a_released_one_from_its_checkpoint() -> (
    None
):
    sink = MemorySink()
    executor = SimulatedExecutor([0, 1], cost)
    runner = HopperRunner(executor, sink, seed=0)
    runner.run(targets(2, 1))
    sink.checkpoints[1] = (1, b"checkpoint of trial 1")
    loaded: list[int] = []
    load = sink.load_checkpoint

    def counting_load(trial_id: int) -> tuple[int, bytes | None]:
        loaded.append(trial_id)
        return load(trial_id)

    sink.load_checkpoint = counting_load  # type: ignore[method-assign]
    runner.release([1])
    runner.run([TrainingTarget(0, {"lr": 0.1}, 1, 2), TrainingTarget(1, {"lr": 0.1}, 1, 2)])
    # Trial 0's state was still held on a worker; trial 1 was released, so it came back
    # from its checkpoint.
    assert loaded == [1]
    assert {(0, 2), (1, 2)} <= set(sink.epochs)


def test_a_target_past_epoch_zero_without_any_state_is_refused() -> None:
    runner = HopperRunner(SimulatedExecutor([0], cost), MemorySink(), seed=0)
    with pytest.raises(TrainingError, match="no state at epoch 2"):
        runner.add([TrainingTarget(7, {"lr": 0.1}, 2, 3)])


def test_jobs_lost_with_their_worker_do_not_count_as_training_failures() -> None:
    class LosingExecutor(SimulatedExecutor):
        def wait(self, timeout: float | None = None) -> list[JobResult]:
            return [
                dataclasses.replace(r, lost=True) if r.error else r for r in super().wait(timeout)
            ]

    lost: set[Job] = set()

    def lose_each_job_once(job: Job) -> bool:
        fresh = job not in lost
        lost.add(job)
        return fresh

    executor = LosingExecutor([0, 1], cost, fail=lose_each_job_once)
    # Every job fails once; with no failure allowed, only not counting the losses finishes.
    summary = HopperRunner(executor, MemorySink(), seed=0, max_failures=0).run(targets(2, 1))
    assert summary.failed_jobs == 2 * 2 * 2
    assert sorted(summary.completed) == [0, 1]


def test_a_trial_whose_job_keeps_failing_leaves_and_the_others_finish() -> None:
    failed: list[tuple[int, str]] = []
    sink = MemorySink()
    executor = SimulatedExecutor([0, 1], cost, fail=lambda job: job.model_id == 1)
    runner = HopperRunner(
        executor,
        sink,
        seed=0,
        max_failures=2,
        on_model_failed=lambda trial, error: failed.append((trial, error)),
    )
    summary = runner.run(targets(3, 2))
    assert [t for t, _ in failed] == [1]
    assert "trial 1" in failed[0][1] and "failed 3 times" in failed[0][1]
    assert sorted(summary.completed) == [0, 2]
    assert {t for t, _ in sink.epochs} == {0, 2}
    assert not runner.busy
