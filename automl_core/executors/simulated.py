"""An executor with a simulated clock, and a whole MOP run replayed on it.

``SimulatedExecutor`` keeps the ``Executor`` contract of ``mop/executor.py`` but runs
nothing: a job takes ``cost(job)`` simulated seconds, and ``wait()`` jumps the clock to
the next end. ``simulate`` drives the real runner (``mop/runner.py``: ``HopperRunner``)
with it and an in-memory sink, so a simulation takes the same result-handling path as a
search; it replays a run with unchanged scheduler and runner code in seconds, for tests
and for ``benchmarks/bench_scheduler_scale.py``.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from automl_core.mop.executor import JobResult, StateRef, Visit
from automl_core.mop.joblog import JobLogError, check_job_log, job_log_problems
from automl_core.mop.results import EpochMetrics
from automl_core.mop.runner import HopperRunner, TrainingTarget
from automl_core.mop.scheduler import MopScheduler
from automl_core.mop.types import (
    EpochCompleted,
    Event,
    Instruction,
    Job,
    JobRecord,
    ModelAdded,
    ModelCompleted,
    ModelReset,
    RunJob,
)

__all__ = [
    "JobLogError",
    "JobRecord",
    "MemorySink",
    "SimulatedExecutor",
    "SimulationResult",
    "check_job_log",
    "job_log_problems",
    "simulate",
]


# One visit: (partition, epoch, kind, worker, started_at, ended_at). A tuple of atomic
# values, which the garbage collector stops tracking: a long run holds millions of them.
_Record = tuple[int, int, str, str, float, float]


@dataclass(frozen=True, eq=False)
class SimState:
    """The state token a simulated job returns: the visits of its epoch so far are the
    first ``n`` records of ``log``, a list the next states of the epoch append to.

    Shared, not copied, so a job costs O(1) however many partitions there are;
    ``visits`` builds the ``Visit`` objects (O(P), once per epoch).
    """

    model_id: int
    epoch: int
    partition: int
    log: list[_Record]
    n: int

    @property
    def visits(self) -> tuple[Visit, ...]:
        """The visits of this state's epoch so far, in the order they ran."""
        return tuple(Visit(*r, dict(_SIM_METRICS)) for r in self.log[: self.n])


_SIM_METRICS = {"loss_sum": 0.0, "correct": 0.0, "samples": 1.0}


class SimulatedExecutor:
    """Runs nothing: job ``j`` takes ``cost(j)`` simulated seconds on its partition's worker.

    ``fail(job)``, asked once per submission, makes that attempt end with an error after
    its cost; ``lose_state(job)``, asked only for failed attempts, says whether the
    model's state died with it (``JobResult.state_lost``). The worker of partition ``p``
    is named ``"sim-<p>"``. ``dispatch_s`` is the driver's round trip: a job sent to an
    idle worker starts that long after it is submitted, while with ``queue_jobs`` a job
    queued behind a running one starts the moment that one ends.
    """

    def __init__(
        self,
        partitions: Sequence[int],
        cost: Callable[[Job], float],
        *,
        fail: Callable[[Job], bool] | None = None,
        lose_state: Callable[[Job], bool] | None = None,
        queue_jobs: bool = False,
        dispatch_s: float = 0.0,
    ) -> None:
        """Raises ValueError when ``partitions`` is empty or repeats an id, or when
        ``dispatch_s`` is negative."""
        pids = tuple(int(p) for p in partitions)
        if not pids or len(set(pids)) != len(pids):
            raise ValueError(f"The value of partitions is {pids}, but must be unique ids.")
        if not dispatch_s >= 0:
            raise ValueError(f"The value of dispatch_s is {dispatch_s}, but must be >= 0.")
        self._partitions = pids
        self._known = frozenset(pids)
        self._queue_jobs = queue_jobs
        self._dispatch_s = float(dispatch_s)
        self._cost = cost
        self._fail = fail
        self._lose_state = lose_state
        self._clock = 0.0
        self._seq = 0  # ties in end time come back in submission order
        # (end, sequence, start, job, failed, input state); the sequence breaks every tie.
        self._heap: list[tuple[float, int, float, Job, bool, Any]] = []
        # partition -> (start, end, job) of its jobs in flight, in the order they run
        self._busy: dict[int, list[tuple[float, float, Job]]] = {}
        self._busy_seconds = dict.fromkeys(pids, 0.0)
        self.submitted = 0  # jobs submitted so far
        self.failures = 0  # results with an error so far
        self._closed = False

    @property
    def partitions(self) -> Sequence[int]:
        return self._partitions

    @property
    def evaluation_pass(self) -> bool:
        return True

    @property
    def queues_jobs(self) -> bool:
        return self._queue_jobs

    @property
    def in_flight(self) -> Mapping[int, list[tuple[float, float, Job]]]:
        """Partition -> (start, end, job) of its jobs in flight, in the order they run (a
        read-only live view: O(1), asked once per step of a simulation)."""
        return MappingProxyType(self._busy)

    def submit(self, job: Job, config: Mapping[str, Any], state: StateRef | bytes | None) -> None:
        """Start ``job`` after ``dispatch_s`` (or when the partition's running job ends,
        when it is queued); it ends ``cost(job)`` simulated seconds after it starts.

        Raises ValueError for an unknown partition, a busy one (one that already queues a
        job, with ``queue_jobs``) or a cost that is negative or not finite; RuntimeError
        after ``close()``.
        """
        if self._closed:
            raise RuntimeError("submit() after close(): the executor is closed.")
        if job.partition not in self._known:
            raise ValueError(f"Job {job} names partition {job.partition}, which is unknown.")
        ahead = self._busy.get(job.partition, [])
        if len(ahead) >= (2 if self._queue_jobs else 1):
            raise ValueError(
                f"Job {job} submitted to partition {job.partition}, "
                f"which still runs {[j for _, _, j in ahead]}."
            )
        seconds = float(self._cost(job))
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"cost({job}) is {seconds}, but must be finite and >= 0.")
        failed = bool(self._fail(job)) if self._fail is not None else False
        # Queued or not, a job reaches its worker one round trip after it is submitted.
        start = max(ahead[-1][1] if ahead else 0.0, self._clock + self._dispatch_s)
        self._busy.setdefault(job.partition, []).append((start, start + seconds, job))
        self.submitted += 1
        entry = (start + seconds, self._seq, start, job, failed, state)
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
            running = self._busy[job.partition]
            running.pop(0)  # a partition's jobs end in the order they run
            if not running:
                del self._busy[job.partition]
            self._busy_seconds[job.partition] += end - start
            self.failures += failed
            results.append(self._result(job, start, end, failed, state))
        return results

    def _result(self, job: Job, start: float, end: float, failed: bool, state: Any) -> JobResult:
        worker = f"sim-{job.partition}"
        if failed:
            lost = bool(self._lose_state(job)) if self._lose_state is not None else False
            return JobResult(job, worker, start, end, error="simulated failure", state_lost=lost)
        record = (job.partition, job.epoch, job.kind.value, worker, start, end)
        if isinstance(state, SimState) and state.epoch == job.epoch:
            log = state.log
            if len(log) != state.n:  # a second job continued that state: branch off a copy
                log = log[: state.n]
            log.append(record)
        else:  # a new epoch, or a fresh or checkpointed model: a new list
            log = [record]
        return JobResult(
            job, worker, start, end, SimState(job.model_id, job.epoch, job.partition, log, len(log))
        )

    def fetch_epoch(self, state: StateRef | bytes) -> tuple[bytes, list[Visit]]:
        if isinstance(state, SimState):
            return b"", list(state.visits)
        return (state if isinstance(state, bytes) else b""), []

    def busy_seconds(self) -> dict[int, float]:
        """Partition -> simulated seconds its worker has been occupied so far (failed jobs
        and the elapsed part of jobs still in flight included)."""
        busy = dict(self._busy_seconds)
        for partition, jobs in self._busy.items():
            busy[partition] += sum(max(0.0, self._clock - start) for start, _, _ in jobs)
        return busy

    def now(self) -> float:
        return self._clock

    def close(self) -> None:
        self._closed = True


@dataclass
class SimulationResult:
    """What a simulated run did. Times are simulated seconds unless named ``wall``."""

    completed: bool  # False when stopped by max_decisions
    makespan: float
    wall_seconds: float  # real time of the whole run
    scheduler_seconds: float  # real time spent inside scheduler.handle()
    decisions: int  # RunJob instructions carried out
    busy: dict[int, float]  # partition -> seconds its worker was occupied (failures included)
    failures: int  # results with an error
    dropped: int  # results of jobs the scheduler had dropped (ModelReset)
    notifications: list[EpochCompleted | ModelCompleted] = field(default_factory=list)
    log: list[JobRecord] = field(default_factory=list)

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


class MemorySink:
    """The runner's ``ResultSink`` in memory: the job log (unless ``keep_jobs`` is
    False) and each trial's latest checkpoint; epoch metrics are dropped."""

    def __init__(self, *, keep_jobs: bool = True) -> None:
        self.jobs: dict[tuple[int, int, int, str], JobRecord] = {}
        self.checkpoints: dict[int, tuple[int, bytes]] = {}
        self._keep_jobs = keep_jobs

    def record_jobs(self, rows: Sequence[JobRecord]) -> None:
        if self._keep_jobs:
            for r in rows:
                self.jobs[(r.trial_id, r.epoch, r.partition, r.kind)] = r

    def record_epoch(self, trial_id: int, epoch: int, metrics: EpochMetrics, state: bytes) -> None:
        self.checkpoints[trial_id] = (epoch, state)

    def load_checkpoint(self, trial_id: int) -> tuple[int, bytes | None]:
        return self.checkpoints.get(trial_id, (0, None))


def _added(event: ModelAdded) -> TrainingTarget:
    """The model as the runner takes it (a simulated state is a token: any bytes do for a
    model that starts past epoch 0)."""
    state = b"" if event.start_epoch > 0 else None
    return TrainingTarget(
        event.model_id, {}, event.start_epoch, event.target_epoch, state, event.priority
    )


def _follow_up(event: Event) -> TrainingTarget | ModelReset:
    if isinstance(event, ModelAdded):
        return _added(event)
    if isinstance(event, ModelReset):
        return event
    raise TypeError(f"The value of event is {event!r}, but must be a ModelAdded or ModelReset.")


def simulate(
    scheduler: MopScheduler,
    executor: SimulatedExecutor,
    models: Sequence[ModelAdded],
    on_instruction: Callable[[Instruction], Iterable[Event] | None] | None = None,
    *,
    max_decisions: int | None = None,
    keep_log: bool = True,
) -> SimulationResult:
    """Run ``models`` through a ``HopperRunner`` driving ``scheduler`` on ``executor`` to
    completion (or ``max_decisions`` jobs) and report what happened.

    ``on_instruction`` sees every instruction after it is carried out; the events it
    returns (``ModelAdded`` for a promoted or late model, ``ModelReset``) are carried out
    right away. Results are handled as the runner handles them (a failure is retried
    however often it recurs). The log is the runner's job log: the last attempt of each
    visit of every completed epoch, like ``mop_jobs``.

    Raises:
        RuntimeError: the scheduler is not done but nothing runs (a deadlock).
        TypeError: ``on_instruction`` returned another kind of event.
    """
    started = time.perf_counter()
    t0 = executor.now()
    sink = MemorySink(keep_jobs=keep_log)
    notifications: list[EpochCompleted | ModelCompleted] = []

    def hook(ins: Instruction) -> list[TrainingTarget | ModelReset] | None:
        if not isinstance(ins, RunJob):
            notifications.append(ins)
        if on_instruction is None:
            return None
        return [_follow_up(e) for e in on_instruction(ins) or ()]

    runner = HopperRunner(
        executor, sink, scheduler=scheduler, on_instruction=hook, max_failures=sys.maxsize
    )
    decided, failed = executor.submitted, executor.failures
    runner.add([_added(m) for m in models])
    while runner.busy:
        if max_decisions is not None and executor.submitted - decided >= max_decisions:
            break
        if not executor.in_flight:
            raise RuntimeError("Deadlock: the scheduler is not done but no job runs.")
        runner.step()
    summary = runner.summary
    return SimulationResult(
        completed=scheduler.done,
        makespan=executor.now() - t0,
        wall_seconds=time.perf_counter() - started,
        scheduler_seconds=summary.scheduler_seconds,
        decisions=executor.submitted - decided,
        busy=executor.busy_seconds(),
        failures=executor.failures - failed,
        dropped=summary.dropped_jobs,
        notifications=notifications,
        log=list(sink.jobs.values()),
    )
