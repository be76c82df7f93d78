"""Scheduler priorities: a partition picks among its candidates of the highest priority;
equal priorities leave Cerebro's uniform schedule exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest

from automl_core.executors.simulated import SimulatedExecutor, check_job_log, simulate
from automl_core.mop.types import (
    JobFinished,
    ModelAdded,
    ModelRemoved,
    ModelReset,
    RunJob,
)
from tests.unit.test_mop_scheduler import CheckedScheduler


def _log(
    models: list[ModelAdded], *, n_parts: int = 4, queue_jobs: bool = False
) -> tuple[list[object], int]:
    """The job log of a simulated run, and how many picks were by rejection sampling."""
    speed = np.random.default_rng(5).lognormal(0, 1, len(models))
    sch = CheckedScheduler(list(range(n_parts)), seed=11, queue_jobs=queue_jobs)
    ex = SimulatedExecutor(
        range(n_parts), lambda j: float(speed[j.model_id]), queue_jobs=queue_jobs
    )
    res = simulate(sch, ex, models)
    assert res.completed and sch.done
    check_job_log(res.log, models, range(n_parts), True)
    return list(res.log), sch.counters.sampled_by_rejection


@pytest.mark.parametrize("queue_jobs", [False, True])
def test_equal_priorities_give_the_uniform_schedule(queue_jobs: bool) -> None:
    plain = _log([ModelAdded(m, 0, 2) for m in range(16)], queue_jobs=queue_jobs)
    same = _log([ModelAdded(m, 0, 2, priority=7) for m in range(16)], queue_jobs=queue_jobs)
    assert plain == same
    # The same draws as before: one priority level keeps the rejection sampler.
    assert same[1] > 0


def test_a_partition_takes_the_higher_priority_models_first() -> None:
    """One partition: the first low model is placed while the partition is idle; from
    then on every pick is a high model until none is left."""
    low = [ModelAdded(m, 0, 1, priority=0) for m in range(5)]  # added first
    high = [ModelAdded(m, 0, 1, priority=2) for m in range(5, 10)]
    sch = CheckedScheduler([0], seed=3)
    started = []
    pending = []
    for event in [*low, *high]:
        pending += [i.job for i in sch.handle(event) if isinstance(i, RunJob)]
    while pending:
        job = pending.pop(0)
        started.append(job.model_id)
        pending += [i.job for i in sch.handle(JobFinished(job)) if isinstance(i, RunJob)]
    assert started[0] == 0
    # Each high model trains then evaluates (two visits) before any low model goes on.
    assert set(started[1:11]) == {5, 6, 7, 8, 9} and len(started[1:11]) == 10
    assert set(started[11:]) == {0, 1, 2, 3, 4}
    assert sch.done


@pytest.mark.parametrize("queue_jobs", [False, True])
def test_mixed_priorities_keep_a_clean_log(queue_jobs: bool) -> None:
    rng = np.random.default_rng(2)
    models = [
        ModelAdded(m, 0, int(rng.integers(1, 4)), priority=int(rng.integers(0, 4)))
        for m in range(24)
    ]
    _log(models, queue_jobs=queue_jobs)


def test_removed_reset_and_re_added_models_keep_the_priority_counts() -> None:
    """validate_state (after every event) checks the counts against the active models."""
    sch = CheckedScheduler([0, 1], seed=4, queue_jobs=True)
    sch.handle(ModelAdded(0, 0, 2, priority=3))
    sch.handle(ModelAdded(1, 0, 2, priority=1))
    sch.handle(ModelAdded(2, 0, 2, priority=1))  # queued behind model 0
    sch.handle(ModelRemoved(2))
    sch.handle(ModelReset(0))
    pending = [job for jobs in sch.draining.values() for job in jobs]
    pending += [*sch.running.values(), *sch.queued.values()]
    readded = False
    while pending:
        job = pending.pop(0)
        pending += [i.job for i in sch.handle(JobFinished(job)) if isinstance(i, RunJob)]
        if not readded and 2 not in sch.active_models:
            # Its id again, with another priority, while the others train.
            pending += [
                i.job for i in sch.handle(ModelAdded(2, 0, 1, priority=5)) if isinstance(i, RunJob)
            ]
            readded = True
    assert readded and sch.done
