"""The scheduler's bookkeeping: partition state, the model slot table, counters.

``MopScheduler`` (``scheduler.py``) holds the transitions and the random picks; this base
holds the arrays they read and write (see "Data structures and costs" there), the
queries on them and their O(1) updates, so the state machine reads as transitions only. Attributes stay
on one object: the hot path pays no extra indirection.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from automl_core.mop.types import Job, JobKind

__all__ = ["SchedulerCounters"]

_RANDOM_BATCH = 4096
_INITIAL_SLOTS = 16


@dataclass
class SchedulerCounters:
    """What the scheduler has done so far (a snapshot; changing it changes nothing)."""

    decisions: int = 0  # RunJob instructions issued
    sampled_by_rejection: int = 0  # partition picks decided by rejection sampling
    sampled_by_scan: int = 0  # partition picks decided by an exact scan
    placements: int = 0  # a freed or new model sent to an idle partition (or queued)
    queued: int = 0  # jobs queued behind the job running on their partition
    epochs_completed: int = 0
    models_completed: int = 0
    failures: int = 0  # JobFailed for a current job
    resets: int = 0
    drained: int = 0  # ends of dropped jobs that freed their partition


class _Uniform:
    """Uniform indices from a seeded Generator, drawn in batches for speed."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._buffer: list[float] = []
        self._next = 0

    def index(self, n: int) -> int:
        """A uniform integer in ``[0, n)``; ``n`` must be positive."""
        if self._next == len(self._buffer):
            self._buffer = self._rng.random(_RANDOM_BATCH).tolist()
            self._next = 0
        u = self._buffer[self._next]
        self._next += 1
        # min(): guards the float product against rounding up to n.
        return min(int(u * n), n - 1)


class _SchedulerState:
    """Partition state by partition index, model state by slot (-1 in ``_model``: unused)."""

    def __init__(
        self,
        pids: tuple[int, ...],
        seed: int,
        *,
        evaluate: bool,
        seeded_order: bool,
        queue_jobs: bool,
    ) -> None:
        self._pids = pids
        self._seed = seed
        self._evaluate = evaluate
        self._seeded_order = seeded_order
        self._queue_jobs = queue_jobs
        self._pindex = {p: i for i, p in enumerate(pids)}
        self._rand = _Uniform(seed)
        self._counters = SchedulerCounters()
        n_parts = len(pids)

        # Partition state, by partition index. ``_next`` is set only while ``_job`` is.
        self._job: list[Job | None] = [None] * n_parts  # its current job
        self._next: list[Job | None] = [None] * n_parts  # a current job queued behind it
        self._drain: list[list[Job]] = [[] for _ in range(n_parts)]  # its dropped jobs
        self._n_drain = 0  # dropped jobs not yet reported ended, on all partitions
        self._idle: npt.NDArray[np.bool_] = np.ones(n_parts, dtype=bool)
        self._n_idle = n_parts
        self._pending: npt.NDArray[np.int64] = np.zeros(n_parts, dtype=np.int64)

        # Model state, by slot.
        self._slot: dict[int, int] = {}
        self._free_slots: list[int] = []
        self._n_slots = 0  # high-water mark: slots >= this were never used
        self._model: list[int] = []
        self._epoch: list[int] = []  # the epoch in progress, 1-based
        self._target: list[int] = []
        self._kind: list[JobKind] = []
        self._left: list[int] = []  # visits left in the current pass
        self._on: list[int] = []  # partition index it runs or is queued on, or -1
        self._order: list[tuple[int, ...]] = []  # seeded TRAIN pass: partition indices
        self._need: npt.NDArray[np.bool_] = np.zeros((_INITIAL_SLOTS, n_parts), dtype=bool)
        self._need_t: npt.NDArray[np.bool_] = np.zeros((n_parts, _INITIAL_SLOTS), dtype=bool)
        self._free: npt.NDArray[np.bool_] = np.zeros(_INITIAL_SLOTS, dtype=bool)
        # "needs exactly one partition now": only such a model may be queued, since
        # queueing it takes no choice of partition away from it.
        self._single: npt.NDArray[np.bool_] = np.zeros(_INITIAL_SLOTS, dtype=bool)
        self._prio: npt.NDArray[np.int64] = np.zeros(_INITIAL_SLOTS, dtype=np.int64)
        self._n_with_prio: Counter[int] = Counter()  # active models by priority

    # --- queries -----------------------------------------------------------------------

    @property
    def partitions(self) -> tuple[int, ...]:
        return self._pids

    @property
    def evaluate(self) -> bool:
        return self._evaluate

    @property
    def seeded_order(self) -> bool:
        return self._seeded_order

    @property
    def queue_jobs(self) -> bool:
        return self._queue_jobs

    @property
    def done(self) -> bool:
        """True when no model is left to train (dropped jobs may still be draining)."""
        return not self._slot

    @property
    def active_models(self) -> frozenset[int]:
        """Ids of the models added and not yet completed."""
        return frozenset(self._slot)

    @property
    def running(self) -> Mapping[int, Job]:
        """Partition id -> its current job (the queued one is in ``queued``)."""
        return {self._pids[i]: job for i, job in enumerate(self._job) if job is not None}

    @property
    def queued(self) -> Mapping[int, Job]:
        """Partition id -> the current job queued behind its running one."""
        return {self._pids[i]: job for i, job in enumerate(self._next) if job is not None}

    @property
    def draining(self) -> Mapping[int, tuple[Job, ...]]:
        """Partition id -> its dropped jobs whose end has not been reported yet."""
        return {self._pids[i]: tuple(jobs) for i, jobs in enumerate(self._drain) if jobs}

    @property
    def n_draining(self) -> int:
        """How many dropped jobs have not been reported ended (O(1))."""
        return self._n_drain

    @property
    def idle_partitions(self) -> tuple[int, ...]:
        """Partitions with no job at all, in the order given to the constructor."""
        return tuple(self._pids[i] for i in np.flatnonzero(self._idle))

    @property
    def decisions(self) -> int:
        return self._counters.decisions

    @property
    def counters(self) -> SchedulerCounters:
        return dataclasses.replace(self._counters)

    def is_current(self, job: Job) -> bool:
        """True when ``job`` is the live (running or queued) job on its partition, i.e.
        its result counts. False for a dropped job and for a job never issued."""
        i = self._pindex.get(job.partition)
        return i is not None and (self._job[i] == job or self._next[i] == job)

    def is_draining(self, job: Job) -> bool:
        """True when ``job`` was dropped and its end has not been reported yet."""
        i = self._pindex.get(job.partition)
        return i is not None and job in self._drain[i]

    # --- O(1) updates -------------------------------------------------------------------

    def _can_queue(self, i: int) -> bool:
        """Partition ``i`` may take a queued job: it runs a current job, none is queued
        behind it and no dropped job is there."""
        return (
            self._queue_jobs
            and self._job[i] is not None
            and self._next[i] is None
            and not self._drain[i]
        )

    def _set_need(self, s: int, i: int) -> None:
        """Model ``s`` now needs partition ``i`` (the next of its seeded order)."""
        self._need[s, i] = True
        self._need_t[i, s] = True
        self._pending[i] += 1

    def _set_idle(self, i: int) -> None:
        self._idle[i] = True
        self._n_idle += 1

    def _alloc_slot(self, m: int, *, epoch: int, target: int, priority: int) -> int:
        if self._free_slots:
            s = self._free_slots.pop()
            self._model[s], self._epoch[s], self._target[s] = m, epoch, target
            self._kind[s], self._left[s], self._on[s] = JobKind.TRAIN, 0, -1
            self._order[s] = ()
        else:
            s = self._n_slots
            if s == self._free.shape[0]:
                self._grow()
            self._n_slots += 1
            self._model.append(m)
            self._epoch.append(epoch)
            self._target.append(target)
            self._kind.append(JobKind.TRAIN)
            self._left.append(0)
            self._on.append(-1)
            self._order.append(())
        self._slot[m] = s
        self._prio[s] = priority
        self._n_with_prio[priority] += 1
        return s

    def _top_priority(self, slots: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """Those of ``slots`` with the highest priority among them."""
        if len(self._n_with_prio) <= 1:
            return slots
        prio = self._prio[slots]
        top: npt.NDArray[np.intp] = slots[prio == prio.max()]
        return top

    def _grow(self) -> None:
        """Double the slot capacity (amortised O(P) per model added)."""
        cap = self._free.shape[0]
        n_parts = len(self._pids)
        need = np.zeros((2 * cap, n_parts), dtype=bool)
        need[:cap] = self._need
        need_t = np.zeros((n_parts, 2 * cap), dtype=bool)
        need_t[:, :cap] = self._need_t
        free = np.zeros(2 * cap, dtype=bool)
        free[:cap] = self._free
        single = np.zeros(2 * cap, dtype=bool)
        single[:cap] = self._single
        prio = np.zeros(2 * cap, dtype=np.int64)
        prio[:cap] = self._prio
        self._need, self._need_t, self._free, self._single = need, need_t, free, single
        self._prio = prio

    def _release_slot(self, s: int) -> None:
        # A completed model needs nothing: its row is already clear.
        del self._slot[self._model[s]]
        priority = int(self._prio[s])
        self._n_with_prio[priority] -= 1
        if not self._n_with_prio[priority]:
            del self._n_with_prio[priority]
        self._model[s] = -1
        self._free[s] = False
        self._single[s] = False
        self._free_slots.append(s)
