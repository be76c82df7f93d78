"""An executor with a simulated clock, and a small driver that replays a whole MOP run.

``SimulatedExecutor`` keeps the ``Executor`` contract of ``mop/executor.py`` but runs
nothing: a job takes ``cost(job)`` simulated seconds, and ``wait()`` jumps the clock to
the next end. ``simulate`` does what the real runner (``mop/runner.py``) does, without a
database: it feeds events to the scheduler, carries ``RunJob`` out on the executor and
feeds each result back. Together they replay a search with unchanged scheduler code in
seconds, for tests and for ``benchmarks/bench_scheduler_scale.py``.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from automl_core.mop.executor import JobResult, StateRef, Visit
from automl_core.mop.joblog import JobLogError, JobLogRow, check_job_log, job_log_problems
from automl_core.mop.scheduler import MopScheduler
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
    ModelReset,
    RunJob,
)

__all__ = [
    "JobLogError",
    "JobLogRow",
    "SimulatedExecutor",
    "SimulationResult",
    "check_job_log",
    "job_log_problems",
    "simulate",
]


@dataclass(frozen=True)
class SimState:
    """The state token a simulated job returns, with the visits of its epoch so far."""

    model_id: int
    epoch: int
    partition: int
    visits: tuple[Visit, ...] = ()


class SimulatedExecutor:
    """Runs nothing: job ``j`` takes ``cost(j)`` simulated seconds on its partition's worker.

    ``fail(job)``, asked once per submission, makes that attempt end with an error after
    its cost; ``lose_state(job)``, asked only for failed attempts, says whether the
    model's state died with it (``JobResult.state_lost``). The worker of partition ``p``
    is named ``"sim-<p>"``.
    """

    def __init__(
        self,
        partitions: Sequence[int],
        cost: Callable[[Job], float],
        *,
        fail: Callable[[Job], bool] | None = None,
        lose_state: Callable[[Job], bool] | None = None,
    ) -> None:
        """Raises ValueError when ``partitions`` is empty or repeats an id."""
        pids = tuple(int(p) for p in partitions)
        if not pids or len(set(pids)) != len(pids):
            raise ValueError(f"The value of partitions is {pids}, but must be unique ids.")
        self._partitions = pids
        self._known = frozenset(pids)
        self._cost = cost
        self._fail = fail
        self._lose_state = lose_state
        self._clock = 0.0
        self._seq = 0  # ties in end time come back in submission order
        # (end, sequence, start, job, failed, input state); the sequence breaks every tie.
        self._heap: list[tuple[float, int, float, Job, bool, Any]] = []
        self._busy: dict[int, Job] = {}
        self._closed = False

    @property
    def partitions(self) -> Sequence[int]:
        return self._partitions

    @property
    def evaluation_pass(self) -> bool:
        return True

    @property
    def in_flight(self) -> Mapping[int, Job]:
        """Partition -> the job running there (a read-only live view)."""
        return MappingProxyType(self._busy)

    def submit(self, job: Job, config: Mapping[str, Any], state: StateRef | bytes | None) -> None:
        """Start ``job`` now; it ends ``cost(job)`` simulated seconds later.

        Raises ValueError for an unknown or busy partition or a cost that is negative or
        not finite; RuntimeError after ``close()``.
        """
        if self._closed:
            raise RuntimeError("submit() after close(): the executor is closed.")
        if job.partition not in self._known:
            raise ValueError(f"Job {job} names partition {job.partition}, which is unknown.")
        if job.partition in self._busy:
            raise ValueError(
                f"Job {job} submitted to partition {job.partition}, "
                f"which still runs {self._busy[job.partition]}."
            )
        seconds = float(self._cost(job))
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"cost({job}) is {seconds}, but must be finite and >= 0.")
        failed = bool(self._fail(job)) if self._fail is not None else False
        self._busy[job.partition] = job
        entry = (self._clock + seconds, self._seq, self._clock, job, failed, state)
        heapq.heappush(self._heap, entry)
        self._seq += 1

    def forget(self, model_id: int) -> None:
        """Nothing to free: simulated states are tokens."""

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Advance the clock to the earliest end; return every job ending then.

        ``timeout`` is ignored: simulated time jumps straight to the next end.

        Raises RuntimeError when no job is in flight (a real executor would block forever).
        """
        if not self._heap:
            raise RuntimeError("wait() with no job in flight would never return.")
        end = self._heap[0][0]
        self._clock = end
        results = []
        while self._heap and self._heap[0][0] == end:
            _, _, start, job, failed, state = heapq.heappop(self._heap)
            del self._busy[job.partition]
            results.append(self._result(job, start, end, failed, state))
        return results

    def _result(self, job: Job, start: float, end: float, failed: bool, state: Any) -> JobResult:
        worker = f"sim-{job.partition}"
        if failed:
            lost = bool(self._lose_state(job)) if self._lose_state is not None else False
            return JobResult(job, worker, start, end, error="simulated failure", state_lost=lost)
        before = state.visits if isinstance(state, SimState) else ()
        visit = Visit(
            job.partition,
            job.epoch,
            job.kind.value,
            worker,
            start,
            end,
            {"loss_sum": 0.0, "correct": 0.0, "samples": 1.0},
        )
        visits = (*(v for v in before if v.epoch == job.epoch), visit)
        return JobResult(
            job, worker, start, end, SimState(job.model_id, job.epoch, job.partition, visits)
        )

    def fetch_epoch(self, state: StateRef | bytes) -> tuple[bytes, list[Visit]]:
        if isinstance(state, SimState):
            return b"", list(state.visits)
        return (state if isinstance(state, bytes) else b""), []

    def now(self) -> float:
        return self._clock

    def close(self) -> None:
        self._closed = True


@dataclass
class SimulationResult:
    """What a simulated run did. Times are simulated seconds unless named ``wall``."""

    completed: bool  # False when stopped by max_decisions
    makespan: float
    wall_seconds: float  # real time of the whole loop
    scheduler_seconds: float  # real time spent inside scheduler.handle()
    decisions: int  # RunJob instructions carried out
    busy: dict[int, float]  # partition -> seconds its worker was occupied (failures included)
    failures: int  # results with an error
    dropped: int  # results of jobs the scheduler had dropped (ModelReset)
    notifications: list[EpochCompleted | ModelCompleted] = field(default_factory=list)
    log: list[JobLogRow] = field(default_factory=list)

    @property
    def utilisation(self) -> float:
        """Busy worker-seconds / (workers x makespan); 1.0 for an empty run."""
        if self.makespan <= 0:
            return 1.0
        return sum(self.busy.values()) / (len(self.busy) * self.makespan)

    @property
    def decisions_per_second(self) -> float:
        """Decisions per real second of the whole loop (scheduler and executor)."""
        return self.decisions / self.wall_seconds if self.wall_seconds > 0 else math.inf


def simulate(
    scheduler: MopScheduler,
    executor: SimulatedExecutor,
    models: Sequence[ModelAdded],
    on_instruction: Callable[[Instruction], Iterable[Event] | None] | None = None,
    *,
    max_decisions: int | None = None,
    keep_log: bool = True,
) -> SimulationResult:
    """Run ``models`` to completion (or ``max_decisions`` jobs) and report what happened.

    ``on_instruction`` sees every instruction after it is carried out; events it returns
    (e.g. ``ModelAdded`` for a promoted model, ``ModelReset``) are handled right away. A
    result counts only if ``scheduler.is_current(job)``; a failure that lost the state
    is fed as ``ModelReset`` then ``JobFailed``. The log keeps the last attempt of each
    visit, like ``mop_jobs``. Raises RuntimeError if the scheduler is not done but
    nothing runs (a deadlock), and whatever the scheduler or executor raise.
    """
    started = time.perf_counter()
    t0 = executor.now()
    busy = dict.fromkeys(executor.partitions, 0.0)
    begun: dict[int, float] = {}  # partition -> start of its job in flight
    visits: dict[tuple[int, int, int, JobKind], JobLogRow] = {}
    out = SimulationResult(False, 0.0, 0.0, 0.0, 0, busy, 0, 0)

    def feed(event: Event) -> None:
        tick = time.perf_counter()
        instructions = scheduler.handle(event)
        out.scheduler_seconds += time.perf_counter() - tick
        follow_ups: list[Event] = []
        for ins in instructions:
            if isinstance(ins, RunJob):
                executor.submit(ins.job, {}, None)
                begun[ins.job.partition] = executor.now()
                out.decisions += 1
            else:
                out.notifications.append(ins)
            if on_instruction is not None:
                follow_ups.extend(on_instruction(ins) or ())
        for follow_up in follow_ups:
            feed(follow_up)

    for model in models:
        feed(model)
    while not scheduler.done:
        if max_decisions is not None and out.decisions >= max_decisions:
            break
        if not executor.in_flight:
            raise RuntimeError("Deadlock: the scheduler is not done but no job runs.")
        for r in executor.wait():
            job = r.job
            del begun[job.partition]
            busy[job.partition] += r.ended_at - r.started_at
            out.failures += r.error is not None
            if not scheduler.is_current(job):
                out.dropped += 1
                feed(JobFinished(job) if r.error is None else JobFailed(job))
            elif r.error is None:
                if keep_log:
                    key = (job.model_id, job.epoch, job.partition, job.kind)
                    visits.pop(key, None)  # a redone visit replaces the old one
                    visits[key] = JobLogRow(
                        job.model_id, job.epoch, job.partition, job.kind.value,
                        r.worker, r.started_at, r.ended_at,
                    )  # fmt: skip
                feed(JobFinished(job))
            elif r.state_lost:
                feed(ModelReset(job.model_id))
                feed(JobFailed(job))
            else:
                feed(JobFailed(job))

    now = executor.now()
    for partition, start in begun.items():  # jobs cut off by max_decisions
        busy[partition] += now - start
    out.completed = scheduler.done
    out.makespan = now - t0
    out.wall_seconds = time.perf_counter() - started
    out.log = list(visits.values())
    return out
