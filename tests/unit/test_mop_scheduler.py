"""The model hopper scheduler as a pure state machine: events in, instructions out."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import automl_core.mop.scheduler as scheduler_module
from automl_core.executors.simulated import SimulatedExecutor, check_job_log, simulate
from automl_core.mop.scheduler import MopScheduler, SchedulerStateError
from automl_core.mop.types import (
    EpochCompleted,
    Event,
    Instruction,
    Job,
    JobFailed,
    JobFinished,
    JobKind,
    ModelAdded,
    ModelCompleted,
    ModelRemoved,
    ModelReset,
    RunJob,
)
from automl_core.mop.visit_order import train_order

T, E = JobKind.TRAIN, JobKind.EVAL


class CheckedScheduler(MopScheduler):
    """Validates every invariant after every event."""

    def handle(self, event: Event) -> list[Instruction]:
        out = super().handle(event)
        self.validate_state()
        return out


def runs(instructions: Sequence[Instruction]) -> list[Job]:
    return [i.job for i in instructions if isinstance(i, RunJob)]


def finish(sch: MopScheduler, job: Job) -> list[Instruction]:
    return sch.handle(JobFinished(job))


# --- exact sequences for tiny cases ----------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_one_model_two_partitions_with_evaluation(seed: int) -> None:
    sch = CheckedScheduler([10, 20], seed=seed, seeded_order=False)
    [first] = sch.handle(ModelAdded(7, 0, 2))
    assert isinstance(first, RunJob)
    a = first.job.partition
    b = 30 - a
    assert first == RunJob(Job(7, a, 1, T))
    assert finish(sch, Job(7, a, 1, T)) == [RunJob(Job(7, b, 1, T))]
    # The eval pass starts where the train pass ended: the state does not move.
    assert finish(sch, Job(7, b, 1, T)) == [RunJob(Job(7, b, 1, E))]
    assert finish(sch, Job(7, b, 1, E)) == [RunJob(Job(7, a, 1, E))]
    assert finish(sch, Job(7, a, 1, E)) == [EpochCompleted(7, 1), RunJob(Job(7, a, 2, T))]
    assert finish(sch, Job(7, a, 2, T)) == [RunJob(Job(7, b, 2, T))]
    assert finish(sch, Job(7, b, 2, T)) == [RunJob(Job(7, b, 2, E))]
    assert finish(sch, Job(7, b, 2, E)) == [RunJob(Job(7, a, 2, E))]
    assert not sch.done
    assert finish(sch, Job(7, a, 2, E)) == [EpochCompleted(7, 2), ModelCompleted(7, 2)]
    assert sch.done and sch.running == {} and set(sch.idle_partitions) == {10, 20}
    assert sch.decisions == 8


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_one_model_two_partitions_without_evaluation(seed: int) -> None:
    sch = CheckedScheduler([0, 1], seed=seed, evaluate=False, seeded_order=False)
    a = runs(sch.handle(ModelAdded(3, 1, 3)))[0].partition  # epochs 2 and 3 remain
    b = 1 - a
    assert finish(sch, Job(3, a, 2, T)) == [RunJob(Job(3, b, 2, T))]
    assert finish(sch, Job(3, b, 2, T)) == [EpochCompleted(3, 2), RunJob(Job(3, b, 3, T))]
    assert finish(sch, Job(3, b, 3, T)) == [RunJob(Job(3, a, 3, T))]
    assert finish(sch, Job(3, a, 3, T)) == [EpochCompleted(3, 3), ModelCompleted(3, 3)]
    assert sch.done


@pytest.mark.parametrize("seed", [0, 5])
def test_two_models_two_partitions_swap_without_barrier(seed: int) -> None:
    sch = CheckedScheduler([0, 1], seed=seed, evaluate=False, seeded_order=False)
    a = runs(sch.handle(ModelAdded(0, 0, 1)))[0].partition
    b = 1 - a
    assert sch.handle(ModelAdded(1, 0, 1)) == [RunJob(Job(1, b, 1, T))]
    # Model 0 is done with `a` and `b` is busy: nothing to do, `a` stays idle.
    assert finish(sch, Job(0, a, 1, T)) == []
    assert sch.idle_partitions == (a,)
    # Freeing `b` unblocks both: `b` takes model 0, then model 1 goes to idle `a`.
    assert finish(sch, Job(1, b, 1, T)) == [RunJob(Job(0, b, 1, T)), RunJob(Job(1, a, 1, T))]
    assert finish(sch, Job(1, a, 1, T)) == [EpochCompleted(1, 1), ModelCompleted(1, 1)]
    assert finish(sch, Job(0, b, 1, T)) == [EpochCompleted(0, 1), ModelCompleted(0, 1)]
    assert sch.done


def test_model_with_nothing_to_train_completes_at_once() -> None:
    sch = CheckedScheduler([0, 1], seed=0)
    assert sch.handle(ModelAdded(4, 3, 3)) == [ModelCompleted(4, 3)]
    assert sch.done and sch.decisions == 0
    # It is not active, so it can be added again later (e.g. promoted to a higher rung).
    assert runs(sch.handle(ModelAdded(4, 3, 4)))[0].epoch == 4


def test_failed_job_is_retried_on_its_partition() -> None:
    sch = CheckedScheduler([0], seed=0, evaluate=False)
    [run] = sch.handle(ModelAdded(1, 0, 1))
    assert sch.handle(JobFailed(Job(1, 0, 1, T))) == [RunJob(Job(1, 0, 1, T))]
    assert finish(sch, Job(1, 0, 1, T)) == [EpochCompleted(1, 1), ModelCompleted(1, 1)]
    assert sch.counters.failures == 1 and run == RunJob(Job(1, 0, 1, T))


# --- resets and dropped jobs -----------------------------------------------------------


def test_reset_of_an_idle_model_redoes_its_whole_epoch() -> None:
    sch = CheckedScheduler([0, 1], seed=0, evaluate=False, seeded_order=False)
    a = runs(sch.handle(ModelAdded(0, 0, 1)))[0].partition
    sch.handle(ModelAdded(1, 0, 1))  # occupies the other partition
    assert finish(sch, Job(0, a, 1, T)) == []  # model 0 waits for the busy partition
    # Its state is lost: partition `a` is needed again and is idle, so it goes there.
    assert sch.handle(ModelReset(0)) == [RunJob(Job(0, a, 1, T))]


def test_reset_of_a_running_model_drains_its_partition() -> None:
    sch = CheckedScheduler([0, 1], seed=0, evaluate=False, seeded_order=False)
    a = runs(sch.handle(ModelAdded(0, 0, 1)))[0].partition
    b = 1 - a
    dropped = Job(0, a, 1, T)
    # The model is off every worker at once and goes to the idle partition; the dropped
    # job may still run, so its partition is neither running nor idle until it reports.
    assert sch.handle(ModelReset(0)) == [RunJob(Job(0, b, 1, T))]
    assert not sch.is_current(dropped)
    assert sch.draining == {a: (dropped,)} and sch.running == {b: Job(0, b, 1, T)}
    assert sch.idle_partitions == ()
    # The dropped job's end frees the partition and counts for nothing.
    assert finish(sch, dropped) == []
    assert sch.draining == {} and sch.idle_partitions == (a,)
    assert finish(sch, Job(0, b, 1, T)) == [RunJob(Job(0, a, 1, T))]
    assert finish(sch, Job(0, a, 1, T)) == [EpochCompleted(0, 1), ModelCompleted(0, 1)]
    assert sch.counters.drained == 1 and sch.counters.resets == 1


def test_failure_that_lost_the_state_is_reset_then_failed() -> None:
    sch = CheckedScheduler([0, 1], seed=1)
    a = runs(sch.handle(ModelAdded(0, 0, 1)))[0].partition
    b = 1 - a
    assert finish(sch, Job(0, a, 1, T)) == [RunJob(Job(0, b, 1, T))]
    # The protocol for a lost state: reset first (the job is dropped), then report it.
    assert sch.handle(ModelReset(0)) == [RunJob(Job(0, a, 1, T))]
    assert sch.handle(JobFailed(Job(0, b, 1, T))) == []  # b idles: model 0 runs on a
    assert finish(sch, Job(0, a, 1, T)) == [RunJob(Job(0, b, 1, T))]


# --- invalid events --------------------------------------------------------------------


def test_invalid_events_raise_and_leave_the_state_unchanged() -> None:
    sch = CheckedScheduler([0, 1], seed=0)
    job = runs(sch.handle(ModelAdded(0, 0, 2)))[0]
    other = Job(0, 1 - job.partition, 1, T)
    cases: list[tuple[Event, str]] = [
        (ModelAdded(0, 0, 3), "already active"),
        (ModelAdded(1, 3, 2), "start_epoch 3 > target_epoch 2"),
        (ModelAdded(1, -1, 2), "must be >= 0"),
        (JobFinished(other), "runs None"),
        (JobFinished(Job(0, job.partition, 2, T)), "runs Job"),
        (JobFinished(Job(0, job.partition, 1, E)), "runs Job"),
        (JobFinished(Job(0, 9, 1, T)), "partition 9 is unknown"),
        (JobFailed(other), "runs None"),
        (ModelReset(5), "not active"),
    ]
    for event, message in cases:
        with pytest.raises(ValueError, match=message):
            sch.handle(event)
        sch.validate_state()
    with pytest.raises(TypeError):
        sch.handle(RunJob(job))  # type: ignore[arg-type]
    assert sch.running == {job.partition: job} and sch.decisions == 1
    assert finish(sch, job) == [RunJob(other)]
    with pytest.raises(ValueError, match="runs"):
        finish(sch, job)  # finished twice


@pytest.mark.parametrize("partitions", [[], [0, 1, 0]])
def test_bad_partitions_are_rejected(partitions: list[int]) -> None:
    with pytest.raises(ValueError, match="partitions"):
        MopScheduler(partitions, seed=0)


def test_validate_state_detects_a_broken_state() -> None:
    sch = MopScheduler([0, 1], seed=0)
    job = runs(sch.handle(ModelAdded(0, 0, 1)))[0]
    sch.validate_state()
    sch._idle[sch._pindex[job.partition]] = True  # a busy partition marked idle
    with pytest.raises(SchedulerStateError, match="idle"):
        sch.validate_state()


def test_validate_state_detects_an_idle_partition_with_runnable_work() -> None:
    sch = MopScheduler([0, 1], seed=0, evaluate=False, seeded_order=False)
    a = runs(sch.handle(ModelAdded(0, 0, 1)))[0].partition
    sch.handle(ModelAdded(1, 0, 1))
    finish(sch, Job(0, a, 1, T))
    sch._need[0, a] = sch._need_t[a, 0] = True  # model 0 "needs" idle partition a again
    sch._pending[a] += 1
    sch._left[0] += 1
    sch._single[0] = False
    with pytest.raises(SchedulerStateError, match="idle although model 0"):
        sch.validate_state()


# --- randomness ------------------------------------------------------------------------


@pytest.mark.parametrize("draws", [scheduler_module._REJECTION_DRAWS, 0])
def test_an_idle_partition_picks_uniformly(monkeypatch: pytest.MonkeyPatch, draws: int) -> None:
    """Both the rejection branch and the exact scan (draws=0) pick uniformly."""
    monkeypatch.setattr(scheduler_module, "_REJECTION_DRAWS", draws)
    picks: Counter[int] = Counter()
    for seed in range(2000):
        sch = MopScheduler([0], seed=seed)
        for m in range(5):
            sch.handle(ModelAdded(m, 0, 1))
        # Model 0 held the only partition; now it needs it again for its eval pass,
        # so all five models are candidates.
        [run] = finish(sch, Job(0, 0, 1, T))
        assert isinstance(run, RunJob)
        picks[run.job.model_id] += 1
    assert set(picks) == set(range(5))
    # 400 expected each, sd 18: a 4.5 sd band, and the seeds are fixed.
    assert all(320 <= n <= 480 for n in picks.values()), picks


def _run(seed: int, n_models: int = 12, n_parts: int = 4) -> tuple[list[object], list[object]]:
    rng = np.random.default_rng(99)
    speed = rng.lognormal(0, 1, n_models)
    sch = CheckedScheduler(list(range(n_parts)), seed=seed)
    ex = SimulatedExecutor(range(n_parts), lambda j: float(speed[j.model_id]))
    res = simulate(sch, ex, [ModelAdded(m, 0, 2) for m in range(n_models)])
    return list(res.log), list(res.notifications)


def test_same_seed_same_schedule_and_different_seed_different_schedule() -> None:
    assert _run(seed=1) == _run(seed=1)
    assert _run(seed=1)[0] != _run(seed=2)[0]


# --- shapes of work ----------------------------------------------------------------------


def _complete(
    n_parts: int,
    models: list[ModelAdded],
    cost: dict[int, float],
    *,
    evaluate: bool = True,
    seeded_order: bool = True,
) -> tuple[MopScheduler, list[Instruction]]:
    sch = CheckedScheduler(
        list(range(n_parts)), seed=3, evaluate=evaluate, seeded_order=seeded_order
    )
    ex = SimulatedExecutor(range(n_parts), lambda j: cost[j.model_id])
    res = simulate(sch, ex, models)
    assert res.completed and sch.done
    check_job_log(res.log, models, range(n_parts), evaluate)
    return sch, list(res.notifications)


def test_more_partitions_than_models() -> None:
    models = [ModelAdded(m, 0, 2) for m in range(3)]
    sch, notes = _complete(8, models, {0: 1.0, 1: 2.0, 2: 0.5})
    assert Counter(type(n) for n in notes) == {EpochCompleted: 6, ModelCompleted: 3}
    assert sch.decisions == 3 * 2 * 2 * 8


def test_one_partition_runs_models_one_after_another() -> None:
    models = [ModelAdded(m, 0, 3) for m in range(4)]
    sch, notes = _complete(1, models, {m: 1.0 + m for m in range(4)})
    assert sch.decisions == 4 * 3 * 2
    assert {n.model_id for n in notes if isinstance(n, ModelCompleted)} == set(range(4))


def test_very_different_speeds_no_barrier_and_no_starvation() -> None:
    """In the free order, fast models go round a slow one (a seeded order may have to
    wait for the partition the slow one holds: that is its price)."""
    models = [ModelAdded(0, 0, 1)] + [ModelAdded(m, 0, 3) for m in range(1, 21)]
    cost = {0: 1000.0} | {m: 1.0 for m in range(1, 21)}
    _, notes = _complete(4, models, cost, seeded_order=False)
    completed = [n.model_id for n in notes if isinstance(n, ModelCompleted)]
    assert sorted(completed) == list(range(21))  # the slow one is not starved...
    assert completed[-1] == 0  # ...and the fast ones never waited for it (no barrier)
    assert notes.index(EpochCompleted(0, 1)) > notes.index(ModelCompleted(1, 3))


def test_models_added_late_and_promoted_models_continue() -> None:
    n_parts = 3
    sch = CheckedScheduler(list(range(n_parts)), seed=4)
    ex = SimulatedExecutor(range(n_parts), lambda j: 1.0 + j.model_id % 3)
    added = [ModelAdded(m, 0, 1) for m in range(4)]
    promoted: set[int] = set()
    late: list[int] = []

    def on_instruction(ins: Instruction) -> list[Event]:
        new: list[Event] = []
        if isinstance(ins, ModelCompleted) and ins.model_id < 2 and ins.model_id not in promoted:
            promoted.add(ins.model_id)  # a Hyperband-style promotion: 2 more epochs
            new.append(ModelAdded(ins.model_id, ins.epoch, ins.epoch + 2))
        if isinstance(ins, EpochCompleted) and len(late) < 3:
            late.append(104 + len(late))
            new.append(ModelAdded(late[-1], 0, 2))  # arrives mid-run
        added.extend(e for e in new if isinstance(e, ModelAdded))
        return new

    res = simulate(sch, ex, list(added[:4]), on_instruction)
    assert res.completed and len(added) == 9
    check_job_log(res.log, added, range(n_parts), True)
    epochs = defaultdict(list)
    for n in res.notifications:
        if isinstance(n, EpochCompleted):
            epochs[n.model_id].append(n.epoch)
    assert epochs[0] == epochs[1] == [1, 2, 3] and epochs[2] == epochs[3] == [1]
    assert all(epochs[m] == [1, 2] for m in range(104, 107))


@pytest.mark.parametrize("seeded_order", [True, False])
def test_at_scale_the_log_is_clean_and_the_workers_are_busy(seeded_order: bool) -> None:
    n_parts, n_models = 40, 200
    rng = np.random.default_rng(0)
    speed = rng.lognormal(0, 0.5, n_models)
    models = [ModelAdded(m, 0, 1) for m in range(n_models)]
    sch = MopScheduler(list(range(n_parts)), seed=0, seeded_order=seeded_order)
    ex = SimulatedExecutor(range(n_parts), lambda j: float(speed[j.model_id]))
    res = simulate(sch, ex, models)
    sch.validate_state()
    check_job_log(res.log, models, range(n_parts), True)
    assert res.decisions == len(res.log) == n_models * n_parts * 2
    # No schedule beats the total work spread over all workers, nor the slowest model's
    # own sequence of visits; this one stays close to that bound.
    bound = max(speed.sum() * 2, speed.max() * n_parts * 2)
    assert bound <= res.makespan <= 1.25 * bound
    assert res.utilisation == pytest.approx(speed.sum() * 2 * n_parts / (n_parts * res.makespan))
    counters = sch.counters
    # A seeded pass needs one partition at a time, so candidates are sparse: scans only.
    assert counters.sampled_by_scan > 0
    assert (counters.sampled_by_rejection > 0) != seeded_order


# --- properties under random event orders ------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_random_event_orders_keep_the_invariants(data: st.DataObject) -> None:
    """Finish, fail, reset and add in random orders; each epoch visits each partition once."""
    n_parts = data.draw(st.integers(1, 4), label="partitions")
    evaluate = data.draw(st.booleans(), label="evaluate")
    kinds = [T, E] if evaluate else [T]
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    queue_jobs = data.draw(st.booleans(), label="queue_jobs")
    sch = CheckedScheduler(
        list(range(n_parts)), seed=seed, evaluate=evaluate, queue_jobs=queue_jobs
    )
    to_add = [
        ModelAdded(m, s, s + data.draw(st.integers(0, 2)))
        for m, s in enumerate(data.draw(st.lists(st.integers(0, 2), min_size=1, max_size=5)))
    ]
    in_flight: list[Job] = []  # issued and not yet reported, current or dropped
    visits: dict[int, list[tuple[int, JobKind, int]]] = defaultdict(list)
    last_epoch = {m.model_id: m.start_epoch for m in to_add}
    completed: list[int] = []

    def apply(event: Event) -> None:
        out = sch.handle(event)
        notes = [i for i in out if not isinstance(i, RunJob)]
        assert out == notes + [RunJob(j) for j in runs(out)]  # notifications come first
        in_flight.extend(runs(out))
        for note in notes:
            if isinstance(note, ModelCompleted):
                completed.append(note.model_id)
                continue
            m, epoch = note.model_id, note.epoch
            assert epoch == last_epoch[m] + 1
            last_epoch[m] = epoch
            done = [v for v in visits[m] if v[0] == epoch]
            expected = [(epoch, k, p) for k in kinds for p in range(n_parts)]
            assert sorted(done, key=lambda v: (v[1] != T, v[2])) == expected
            assert [v[1] for v in done] == sorted((v[1] for v in done), key=lambda k: k != T)

    pending_adds = list(to_add)
    apply(pending_adds.pop(0))
    for _step in range(400):
        if sch.done and not pending_adds:
            break
        actions = ["add"] if pending_adds else []
        if in_flight:
            actions += ["finish", "finish", "finish", "fail"]
        if sch.active_models:
            actions.append("reset")
        action = data.draw(st.sampled_from(actions))
        if action == "add":
            apply(pending_adds.pop(0))
        elif action == "reset":
            m = data.draw(st.sampled_from(sorted(sch.active_models)))
            visits[m] = [v for v in visits[m] if v[0] <= last_epoch[m]]
            apply(ModelReset(m))
        else:
            job = in_flight.pop(data.draw(st.integers(0, len(in_flight) - 1)))
            if action == "finish" and sch.is_current(job):
                visits[job.model_id].append((job.epoch, job.kind, job.partition))
            apply(JobFinished(job) if action == "finish" else JobFailed(job))
    # Drain without failures or resets: everything completes.
    while pending_adds:
        apply(pending_adds.pop(0))
    while in_flight:
        job = in_flight.pop(0)
        if sch.is_current(job):
            visits[job.model_id].append((job.epoch, job.kind, job.partition))
        apply(JobFinished(job))
    assert sch.done
    assert sorted(completed) == sorted(m.model_id for m in to_add)
    assert all(last_epoch[m.model_id] == m.target_epoch for m in to_add)


@settings(max_examples=60, deadline=None)
@given(
    n_parts=st.integers(1, 5),
    plan=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=6),
    evaluate=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    fail_p=st.sampled_from([0.0, 0.15, 0.4]),
    lose_p=st.sampled_from([0.0, 0.5]),
    resets=st.integers(0, 3),
    late=st.integers(0, 3),
    queue_jobs=st.booleans(),
)
def test_simulated_runs_complete_with_a_clean_log(
    n_parts: int,
    plan: list[tuple[int, int]],
    evaluate: bool,
    seed: int,
    fail_p: float,
    lose_p: float,
    resets: int,
    late: int,
    queue_jobs: bool,
) -> None:
    """Random sizes, speeds, failures, lost states, resets and late models."""
    rng = np.random.default_rng(seed)
    speeds = rng.choice([0.0, 0.5, 1.0, 7.0], size=len(plan) + late)
    models = [ModelAdded(m, s, s + n) for m, (s, n) in enumerate(plan)]
    added = list(models)
    resets_left = [resets]

    def cost(job: Job) -> float:
        return float(speeds[job.model_id] * rng.uniform(0.5, 1.5))

    def on_instruction(ins: Instruction) -> list[Event]:
        new: list[Event] = []
        if isinstance(ins, RunJob) and resets_left[0] and rng.random() < 0.1:
            resets_left[0] -= 1
            target = ins.job.model_id if rng.random() < 0.5 else min(sch.active_models)
            new.append(ModelReset(target))
        if isinstance(ins, EpochCompleted) and len(added) < len(plan) + late:
            new.append(ModelAdded(len(added), 0, 1 + int(rng.integers(0, 2))))
            added.append(new[-1])  # type: ignore[arg-type]
        return new

    sch = CheckedScheduler(
        list(range(n_parts)), seed=seed, evaluate=evaluate, queue_jobs=queue_jobs
    )
    ex = SimulatedExecutor(
        range(n_parts),
        cost,
        fail=lambda job: bool(rng.random() < fail_p),
        lose_state=lambda job: bool(rng.random() < lose_p),
        queue_jobs=queue_jobs,
        dispatch_s=0.1,
    )
    res = simulate(sch, ex, models, on_instruction)
    assert res.completed and sch.done
    check_job_log(res.log, added, range(n_parts), evaluate)
    epochs: dict[int, list[int]] = defaultdict(list)
    for n in res.notifications:
        if isinstance(n, EpochCompleted):
            epochs[n.model_id].append(n.epoch)
    for m in added:
        assert epochs.get(m.model_id, []) == list(range(m.start_epoch + 1, m.target_epoch + 1))
    finals = [n for n in res.notifications if isinstance(n, ModelCompleted)]
    assert sorted(finals, key=lambda n: n.model_id) == [
        ModelCompleted(m.model_id, m.target_epoch) for m in added
    ]
    if fail_p == 0 and resets == 0:
        assert res.decisions == len(res.log)  # no visit ever ran twice


def test_a_removed_model_leaves_its_pending_visits_and_its_running_job_drains() -> None:
    sch = CheckedScheduler([0, 1], seed=0, evaluate=False, seeded_order=False)
    out = sch.handle(ModelAdded(0, 0, 2)) + sch.handle(ModelAdded(1, 0, 2))
    running = {i.job.model_id: i.job for i in out if isinstance(i, RunJob)}
    assert set(running) == {0, 1}
    assert sch.handle(ModelRemoved(0)) == []
    assert sch.active_models == frozenset({1})
    assert sch.draining == {running[0].partition: (running[0],)}
    assert not sch.is_current(running[0])
    # The dropped job's end frees its partition, where model 1 continues.
    follow = sch.handle(JobFinished(running[0]))
    assert [i.job.model_id for i in follow if isinstance(i, RunJob)] in ([], [1])
    with pytest.raises(ValueError, match="not active"):
        sch.handle(ModelRemoved(0))
    # Model 1 still completes; model 0 never does.
    done: list[int] = []
    pending = [i for i in follow if isinstance(i, RunJob)] or [
        RunJob(j) for j in sch.running.values()
    ]
    while pending:
        job = pending.pop().job
        for ins in sch.handle(JobFinished(job)):
            if isinstance(ins, RunJob):
                pending.append(ins)
            elif isinstance(ins, ModelCompleted):
                done.append(ins.model_id)
    assert done == [1] and sch.done


# --- queued jobs -------------------------------------------------------------------------


def test_a_busy_partition_queues_the_one_model_that_needs_it_next() -> None:
    sch = CheckedScheduler([0, 1], seed=0, evaluate=False, queue_jobs=True)
    first = [train_order(0, m, 1, (0, 1))[0] for m in range(10)]
    assert sorted(first) == [0] * 3 + [1] * 7  # (seed 0) so both partitions have several
    issued = [j for m in range(10) for j in runs(sch.handle(ModelAdded(m, 0, 1)))]
    # Each partition runs a model and queues one of those whose seeded order starts there.
    assert sch.idle_partitions == () and len(sch.queued) == 2 == sch.counters.queued
    assert len(issued) == 4
    for p, waiting in sch.queued.items():
        assert waiting.partition == p and waiting in issued and sch.is_current(waiting)
    p, waiting = next(iter(sch.queued.items()))
    head = sch.running[p]
    # The running job ends: the queued one takes its place without a new instruction for
    # it; whatever is issued next is queued or starts on the partition left.
    out = finish(sch, head)
    assert sch.running[p] == waiting and RunJob(waiting) not in out
    assert all(sch.is_current(j) for j in runs(out))


def test_a_model_that_may_go_to_several_partitions_is_never_queued() -> None:
    """The free order lets a model take any partition it still needs: queueing it on one
    would take that choice away, so it waits for an idle partition as without queues."""
    sch = CheckedScheduler([0, 1], seed=0, evaluate=False, seeded_order=False, queue_jobs=True)
    for m in range(3):
        sch.handle(ModelAdded(m, 0, 1))
    assert sch.queued == {} and len(sch.running) == 2


def test_a_dropped_queued_job_drains_and_nothing_queues_behind_a_dropped_job() -> None:
    sch = CheckedScheduler([0], seed=0, evaluate=False, queue_jobs=True)
    [first] = runs(sch.handle(ModelAdded(0, 0, 1)))
    [second] = runs(sch.handle(ModelAdded(1, 0, 1)))
    assert sch.queued == {0: second}
    assert sch.handle(ModelReset(1)) == []  # its job may still be on the worker's queue
    assert sch.draining == {0: (second,)} and sch.queued == {}
    out = finish(sch, first)  # model 0 is done; model 1 waits for its dropped job to end
    assert out == [EpochCompleted(0, 1), ModelCompleted(0, 1)]
    assert sch.idle_partitions == ()
    assert runs(sch.handle(JobFailed(second))) == [Job(1, 0, 1, T)]


def test_a_queued_job_may_fail_before_the_running_one_ends() -> None:
    sch = CheckedScheduler([0], seed=0, evaluate=False, queue_jobs=True)
    [first] = runs(sch.handle(ModelAdded(0, 0, 1)))
    [second] = runs(sch.handle(ModelAdded(1, 0, 1)))
    assert runs(sch.handle(JobFailed(second))) == [second]  # queued again at once
    finish(sch, first)
    assert sch.running == {0: second} and sch.queued == {}


@pytest.mark.parametrize("queue_jobs", [False, True])
def test_queued_jobs_hide_the_round_trip_between_jobs(queue_jobs: bool) -> None:
    """Each job takes 1 s and the driver's round trip 0.2 s: a worker idles through it
    unless its next job is already queued on it."""
    models = [ModelAdded(m, 0, 2) for m in range(12)]
    sch = CheckedScheduler([0, 1], seed=0, evaluate=False, queue_jobs=queue_jobs)
    ex = SimulatedExecutor([0, 1], lambda job: 1.0, queue_jobs=queue_jobs, dispatch_s=0.2)
    res = simulate(sch, ex, models)
    check_job_log(res.log, models, [0, 1], False)
    if queue_jobs:
        assert res.utilisation > 0.98
    else:
        assert res.utilisation == pytest.approx(1 / 1.2, abs=0.01)


def test_a_reset_of_the_running_model_promotes_the_queued_job_behind_its_drain() -> None:
    sch = CheckedScheduler([0], seed=0, evaluate=False, queue_jobs=True)
    [first] = runs(sch.handle(ModelAdded(0, 0, 1)))
    [second] = runs(sch.handle(ModelAdded(1, 0, 1)))
    # Model 0's job is dropped but may still run: model 1's job is now the partition's
    # current one, and nothing more is queued while the dropped job drains.
    assert sch.handle(ModelReset(0)) == []
    assert sch.running == {0: second} and sch.draining == {0: (first,)} and sch.queued == {}
    # The dropped job ends: model 0 (needing partition 0 again) is queued behind model 1.
    assert runs(sch.handle(JobFinished(first))) == [first]
    assert sch.queued == {0: first} and sch.is_current(first) and not sch.is_draining(first)
    finish(sch, second)
    assert finish(sch, first) == [EpochCompleted(0, 1), ModelCompleted(0, 1)]
    assert sch.done


def test_a_runner_refuses_a_queueing_scheduler_on_an_executor_that_cannot_queue() -> None:
    from automl_core.executors.simulated import MemorySink
    from automl_core.mop.runner import HopperRunner

    ex = SimulatedExecutor([0, 1], lambda job: 1.0)
    with pytest.raises(ValueError, match="queue_jobs=executor.queues_jobs"):
        HopperRunner(ex, MemorySink(), scheduler=MopScheduler([0, 1], seed=0, queue_jobs=True))
