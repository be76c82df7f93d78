"""The simulated executor, the simulation driver and the job-log checker."""

from __future__ import annotations

import math

import pytest

from automl_core.executors.simulated import (
    JobLogError,
    JobRecord,
    SimulatedExecutor,
    check_job_log,
    job_log_problems,
    simulate,
)
from automl_core.mop.executor import Executor
from automl_core.mop.scheduler import MopScheduler
from automl_core.mop.types import (
    EpochCompleted,
    Instruction,
    Job,
    JobKind,
    ModelAdded,
    ModelCompleted,
    RunJob,
)

T, E = JobKind.TRAIN, JobKind.EVAL


def job(m: int, p: int, epoch: int = 1, kind: JobKind = T) -> Job:
    return Job(m, p, epoch, kind)


# --- the executor ------------------------------------------------------------------------


def test_wait_returns_jobs_in_order_of_their_simulated_end() -> None:
    cost = {0: 3.0, 1: 1.0, 2: 1.0}
    ex: Executor = SimulatedExecutor([0, 1, 2], lambda j: 3.0 if j.kind is E else cost[j.model_id])
    for m in range(3):
        ex.submit(job(m, m), {}, None)
    assert ex.now() == 0.0
    first = ex.wait()  # the two 1-second jobs end together, in submission order
    assert [r.job for r in first] == [job(1, 1), job(2, 2)]
    assert ex.now() == 1.0
    ex.submit(job(1, 1, 1, E), {}, None)  # starts at t=1, ends at t=4
    [third] = ex.wait()
    assert third.job == job(0, 0) and (third.started_at, third.ended_at) == (0.0, 3.0)
    [fourth] = ex.wait()
    assert (fourth.started_at, fourth.ended_at) == (1.0, 4.0) and ex.now() == 4.0


def test_results_carry_the_state_with_the_visits_of_its_epoch() -> None:
    ex = SimulatedExecutor([5], lambda j: 2.0)
    ex.submit(job(1, 5), {}, None)
    [r] = ex.wait()
    assert r.worker == "sim-5" and r.error is None and not r.state_lost
    [visit] = r.state.visits
    assert (visit.partition, visit.epoch, visit.kind, visit.worker) == (5, 1, "train", "sim-5")
    assert (visit.started_at, visit.ended_at, visit.metrics["samples"]) == (0.0, 2.0, 1.0)
    ex.submit(job(1, 5, 1, E), {}, r.state)
    [r] = ex.wait()
    state, visits = ex.fetch_epoch(r.state)
    assert state == b"" and [v.kind for v in visits] == ["train", "eval"]
    ex.submit(job(1, 5, 2), {}, r.state)  # a new epoch starts a new list
    [r] = ex.wait()
    assert [(v.epoch, v.kind) for v in ex.fetch_epoch(r.state)[1]] == [(2, "train")]
    assert ex.fetch_epoch(b"checkpoint") == (b"checkpoint", [])


def test_failures_and_lost_states() -> None:
    ex = SimulatedExecutor(
        [0, 1], lambda j: 1.0, fail=lambda j: j.model_id > 0, lose_state=lambda j: j.model_id > 1
    )
    ex.submit(job(0, 0), {}, None)
    ex.submit(job(1, 1), {}, None)
    results = ex.wait()
    assert [(r.error is None, r.state_lost) for r in results] == [(True, False), (False, False)]
    ex.submit(job(2, 0), {}, None)
    [r] = ex.wait()
    assert r.error and r.state_lost and r.state is None


def test_submit_and_wait_refuse_what_the_contract_forbids() -> None:
    ex = SimulatedExecutor([0, 1], lambda j: -1.0 if j.model_id == 9 else math.nan * j.epoch)
    with pytest.raises(RuntimeError, match="no job in flight"):
        ex.wait()
    with pytest.raises(ValueError, match="unknown"):
        ex.submit(job(0, 7), {}, None)
    with pytest.raises(ValueError, match="finite"):
        ex.submit(job(9, 0), {}, None)
    with pytest.raises(ValueError, match="finite"):
        ex.submit(job(1, 0), {}, None)  # NaN
    ok = SimulatedExecutor([0], lambda j: 1.0)
    ok.submit(job(0, 0), {}, None)
    with pytest.raises(ValueError, match="still runs"):
        ok.submit(job(1, 0), {}, None)
    ok.close()
    with pytest.raises(RuntimeError, match="closed"):
        ok.submit(job(1, 0), {}, None)
    with pytest.raises(ValueError, match="unique"):
        SimulatedExecutor([0, 0], lambda j: 1.0)


# --- the driver ----------------------------------------------------------------------------


def test_simulate_reports_makespan_busy_time_and_utilisation() -> None:
    # 2 partitions, evaluate off: model 0 costs 1 per visit, model 1 costs 3.
    cost = {0: 1.0, 1: 3.0}
    models = [ModelAdded(0, 0, 1), ModelAdded(1, 0, 1)]
    sch = MopScheduler([0, 1], seed=0, evaluate=False, seeded_order=False)
    seen: list[Instruction] = []
    res = simulate(sch, SimulatedExecutor([0, 1], lambda j: cost[j.model_id]), models, seen.append)
    # Model 1 holds one partition 0-3 s while model 0 waits for it from 1 s; then they swap.
    assert res.completed and res.makespan == 6.0 and res.decisions == 4
    assert sorted(res.busy.values()) == [4.0, 4.0]
    assert res.utilisation == pytest.approx(8.0 / 12.0)
    assert res.notifications == [x for x in seen if not isinstance(x, RunJob)]
    assert res.notifications[-2:] == [EpochCompleted(1, 1), ModelCompleted(1, 1)]
    assert sum(r.ended_at - r.started_at for r in res.log) == sum(res.busy.values())
    check_job_log(res.log, models, [0, 1], False)
    assert res.wall_seconds >= res.scheduler_seconds > 0 and res.decisions_per_second > 0


def test_simulate_can_stop_after_a_number_of_decisions() -> None:
    models = [ModelAdded(m, 0, 3) for m in range(20)]
    sch = MopScheduler(range(4), seed=0)
    res = simulate(sch, SimulatedExecutor(range(4), lambda j: 1.0), models, max_decisions=50)
    assert not res.completed and not sch.done
    assert 50 <= res.decisions < 50 + 4
    # Jobs cut off still count their elapsed time: all four workers were always busy.
    assert res.utilisation == pytest.approx(1.0)


def test_simulate_keeps_the_last_attempt_of_each_visit_after_a_lost_state() -> None:
    attempts: list[Job] = []

    def fail(j: Job) -> bool:
        attempts.append(j)
        return len(attempts) == 3  # the third job dies and takes the state with it

    models = [ModelAdded(0, 0, 1)]
    sch = MopScheduler([0, 1, 2], seed=0, evaluate=False)
    ex = SimulatedExecutor([0, 1, 2], lambda j: 1.0, fail=fail, lose_state=lambda j: True)
    res = simulate(sch, ex, models)
    assert res.completed and res.failures == 1
    assert res.decisions == 3 + 3  # three visits up to the loss, all three redone after it
    assert sch.counters.resets == 1 and sch.counters.drained == 1
    check_job_log(res.log, models, [0, 1, 2], False)
    assert min(r.started_at for r in res.log) == 3.0  # the epoch restarted after the loss


def test_simulate_takes_the_runners_result_path() -> None:
    """The job log is the runner's: a visit that failed once is logged as attempt 2."""
    tries: list[Job] = []

    def fail(j: Job) -> bool:
        tries.append(j)
        return tries.count(j) == 1 and j.partition == 1

    models = [ModelAdded(0, 0, 2)]
    sch = MopScheduler([0, 1], seed=0, evaluate=True)
    res = simulate(sch, SimulatedExecutor([0, 1], lambda j: 1.0, fail=fail), models)
    assert res.completed and res.failures == 4 and res.dropped == 0
    check_job_log(res.log, models, [0, 1], True)
    assert sorted(r.attempt for r in res.log) == [1] * 4 + [2] * 4
    assert all(r.attempt == 2 for r in res.log if r.partition == 1)


def test_simulated_states_share_their_epochs_visits() -> None:
    ex = SimulatedExecutor([0, 1], lambda j: 1.0)
    ex.submit(job(0, 0), {}, None)
    [first] = ex.wait()
    ex.submit(job(0, 1), {}, first.state)
    [second] = ex.wait()
    assert second.state.log is first.state.log  # shared, not a copy of the visits
    assert [v.partition for v in first.state.visits] == [0]
    assert [v.partition for v in second.state.visits] == [0, 1]
    ex.submit(job(0, 1, 1, E), {}, first.state)  # continues an older state: a branch
    [branch] = ex.wait()
    assert [(v.partition, v.kind) for v in branch.state.visits] == [(0, "train"), (1, "eval")]
    assert [v.partition for v in second.state.visits] == [0, 1]
    ex.submit(job(0, 0, 2), {}, second.state)  # a new epoch starts a new list
    [third] = ex.wait()
    assert third.state.log is not second.state.log and len(third.state.visits) == 1


def test_simulate_detects_a_scheduler_that_deadlocks() -> None:
    class Stuck(MopScheduler):
        def handle(self, event: object) -> list[Instruction]:  # type: ignore[override]
            return []

        @property
        def done(self) -> bool:
            return False

    with pytest.raises(RuntimeError, match="Deadlock"):
        simulate(Stuck([0], seed=0), SimulatedExecutor([0], lambda j: 1.0), [ModelAdded(0, 0, 1)])


# --- the job-log checker -------------------------------------------------------------------


def clean_log() -> list[tuple[int, int, int, str, str, float, float]]:
    """Models 0 and 1, one epoch, two partitions, train then eval, plain tuples."""
    return [
        (0, 1, 0, "train", "w0", 0.0, 1.0),
        (1, 1, 1, "train", "w1", 0.0, 2.0),
        (0, 1, 1, "train", "w1", 2.0, 3.0),
        (1, 1, 0, "train", "w0", 2.0, 4.0),
        (0, 1, 1, "eval", "w1", 3.0, 3.5),
        (1, 1, 0, "eval", "w0", 4.0, 4.5),
        (0, 1, 0, "eval", "w0", 4.5, 5.0),
        (1, 1, 1, "eval", "w1", 4.5, 5.0),
    ]


MODELS = [(0, 0, 1), (1, 0, 1)]


def test_check_job_log_accepts_a_clean_log_of_plain_rows() -> None:
    check_job_log(clean_log(), MODELS, [0, 1], evaluate=True)
    rows = [JobRecord(*r[:3], JobKind(r[3]), *r[4:]) for r in clean_log()]  # type: ignore[arg-type]
    assert job_log_problems(rows, [ModelAdded(0, 0, 1), ModelAdded(1, 0, 1)], [0, 1], True) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda log: log + [(0, 1, 0, "train", "w2", 9.0, 9.5)], "visit repeated"),
        (lambda log: log[1:], "partitions \\[0\\] missing"),
        # Model 0 on two workers at once (its second visit starts before the first ends).
        (lambda log: [(0, 1, 0, "train", "w0", 0.0, 2.5)] + log[1:], "model 0 on two workers"),
        # Worker w1 runs two jobs at once.
        (lambda log: log[:2] + [(0, 1, 1, "train", "w1", 1.5, 3.0)] + log[3:], "worker w1"),
        (lambda log: log + [(2, 1, 0, "train", "w0", 9.0, 9.5)], "unexpected model"),
        (lambda log: log + [(0, 2, 0, "train", "w0", 9.0, 9.5)], "unexpected model or epoch"),
        (lambda log: log[:-1] + [(1, 1, 7, "eval", "w7", 4.5, 5.0)], "unknown partition"),
        (lambda log: log[:-1] + [(1, 1, 1, "eval", "w1", 5.0, 4.8)], "ends before"),
        # Model 0 evaluates on partition 1 before its train pass is over.
        (lambda log: [(0, 1, 1, "eval", "w1", 0.5, 0.6)] + log[:4] + log[5:], "pass order"),
    ],
)
def test_check_job_log_catches_broken_logs(change: object, message: str) -> None:
    broken = change(clean_log())  # type: ignore[operator]
    with pytest.raises(JobLogError, match=message):
        check_job_log(broken, MODELS, [0, 1], evaluate=True)


def test_check_job_log_knows_whether_evaluation_was_on() -> None:
    with pytest.raises(JobLogError, match="evaluate=False"):
        check_job_log(clean_log(), MODELS, [0, 1], evaluate=False)
    with pytest.raises(ValueError, match="7"):
        check_job_log([(0, 1, 0, "train")], MODELS, [0, 1], evaluate=True)
