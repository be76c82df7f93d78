"""The model hopper scheduler: a pure state machine, events in, instructions out.

Implementation notes
====================

What it decides. The data lives in P partitions that never move, one worker slot each.
An epoch of a model is a TRAIN pass (the model visits every partition exactly once) and
then, with ``evaluate=True``, an EVAL pass (every partition once more, after the whole
train pass). A model runs on at most one partition at a time, because its state moves
with it. This is Cerebro's randomized asynchronous schedule: there is no barrier between
hops; whenever a partition is idle it takes, uniformly at random, one model that is not
running anywhere and still needs that partition in its current pass.

Repeatability. With ``seeded_order=True`` (the default) a TRAIN pass visits the
partitions in the order ``visit_order.train_order(seed, model, epoch)``: the model needs
only the next partition of its own order, so timing decides when it trains, never in
which order, and its weights depend on the seed alone. ``seeded_order=False`` is Cerebro's
free order: any pending partition, which can start a model sooner but makes its weights
depend on which worker happened to be free. EVAL passes change no weights and keep the
free order either way.

Order of the decisions inside one ``handle`` call. Before every call no idle partition
has a runnable model (the scheduler is work-conserving). An event frees at most one
partition and at most one model, so afterwards at most two decisions are needed:

1. the freed partition picks uniformly among its runnable models (it may pick the model
   that just left it, when that model started a new pass: the state stays where it is);
2. the freed model, if still free, goes to an idle partition that it needs, chosen
   uniformly among those. No other idle partition can have gained a candidate.

Dropped jobs (``ModelReset`` while the model runs). The model is off every worker at
once and all visits of its current epoch are pending again, but its old job is still
physically running on the executor, so its partition stays *draining*, not idle, until
the runner reports that job's end with ``JobFinished`` or ``JobFailed``. That report is
accepted, frees the partition and changes no model's progress. The runner must call
``is_current(job)`` *before* handing over a result to know whether to keep it (write its
metrics and checkpoint) or throw it away. Never handing a partition to a new job while an
old one may still run there is what makes this safe with real executors. When a failure
lost the model's state, send ``ModelReset(model)`` first and then ``JobFailed(job)``:
the failed visit is then not wastefully retried from the lost state. A failed job
(``JobFailed`` for the current job) just makes its visit pending again; it is retried on
the same partition (visits are per partition) whenever that partition next picks it.
``ModelRemoved`` (a model that cannot train, e.g. its job keeps failing) takes the model
out unfinished: its pending visits go, its slot is freed, and a job it runs drains as
for a reset. No ``ModelCompleted`` follows.

Data structures and costs (M = model slots ever in use at once, P = partitions).

* ``need`` (M x P) and its transpose ``need_t`` (P x M): numpy booleans, "model still
  needs this partition in its current pass" (in a seeded TRAIN pass: "is its next one"). Both are kept so that a row scan is
  contiguous either way. Memory is 2*M*P bytes: 20 MB for 10,000 models x 1,000
  partitions, where per-partition Python sets of ids would take about a gigabyte.
* ``free``: numpy booleans over slots, "active and not running"; ``idle``: numpy
  booleans over partitions; ``pending``: per partition, how many models still need it.
* A partition picks a model by rejection sampling over the slots: draw a slot uniformly,
  accept it if it needs the partition and is free. Each draw is O(1). Rejection only runs
  when ``pending * 4 >= M`` (candidates are likely dense) and gives up after a few draws;
  then one vectorised scan ``flatnonzero(need_t[p] & free)`` (O(M) in C) lists the
  candidates exactly. Either branch picks uniformly among the candidates, so the mixture
  does too. Rejection alone can degenerate (e.g. near the end, when the models that still
  need a partition are all running elsewhere); the scan bounds that case.
* A freed model finds idle partitions with ``flatnonzero(need[m] & idle)`` (O(P) in C),
  skipped entirely when no partition is idle, which is the common case under load.
* Starting a pass sets one row and one column: O(P) in C, i.e. O(1) per job it creates.
  Finishing a job flips two booleans and a counter: O(1).

So a decision costs O(1) expected while candidates are dense, and at worst one O(M) or
O(P) vectorised scan; nothing is ever quadratic. Slots of completed models are reused.
Random numbers come from the seeded numpy Generator in batches (one scalar draw costs
about a microsecond); the same seed and event sequence give the same instructions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from automl_core.mop._scheduler_checks import SchedulerStateError, check_scheduler_state
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

__all__ = ["MopScheduler", "SchedulerCounters", "SchedulerStateError"]

_REJECTION_DRAWS = 8  # after this many misses, list the candidates exactly
_RANDOM_BATCH = 4096
_INITIAL_SLOTS = 16


@dataclass
class SchedulerCounters:
    """What the scheduler has done so far (a snapshot; changing it changes nothing)."""

    decisions: int = 0  # RunJob instructions issued
    sampled_by_rejection: int = 0  # partition picks decided by rejection sampling
    sampled_by_scan: int = 0  # partition picks decided by an exact scan
    placements: int = 0  # a freed or new model sent to an idle partition
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


class MopScheduler:
    """Decides which model trains (or evaluates) on which partition next.

    ``partitions`` are the partition ids, one worker slot each. ``handle`` takes one
    event and returns the notifications it caused (``EpochCompleted``, then
    ``ModelCompleted``), followed by the ``RunJob`` instructions that fill every idle
    partition that has runnable work. See the module notes for the schedule.
    """

    def __init__(
        self,
        partitions: Sequence[int],
        *,
        seed: int,
        evaluate: bool = True,
        seeded_order: bool = True,
    ) -> None:
        """Raises ValueError when ``partitions`` is empty or repeats an id.

        ``seeded_order``: each TRAIN pass follows the model's seeded order of partitions
        (see the module notes), so that a search repeats bit for bit.
        """
        pids = [int(p) for p in partitions]
        if not pids:
            raise ValueError("The value of partitions is empty, but must list at least one id.")
        if len(set(pids)) != len(pids):
            raise ValueError(f"The value of partitions is {pids}, but ids must be unique.")
        self._pids = tuple(pids)
        self._pindex = {p: i for i, p in enumerate(pids)}
        self._evaluate = bool(evaluate)
        self._seed = int(seed)
        self._seeded_order = bool(seeded_order)
        self._rand = _Uniform(seed)
        self._counters = SchedulerCounters()
        n_parts = len(pids)

        # Partition state, by partition index.
        self._job: list[Job | None] = [None] * n_parts
        self._drain: list[Job | None] = [None] * n_parts
        self._idle: npt.NDArray[np.bool_] = np.ones(n_parts, dtype=bool)
        self._n_idle = n_parts
        self._pending: npt.NDArray[np.int64] = np.zeros(n_parts, dtype=np.int64)

        # Model state, by slot. A slot is -1 in _model when unused.
        self._slot: dict[int, int] = {}
        self._free_slots: list[int] = []
        self._n_slots = 0  # high-water mark: slots >= this were never used
        self._model: list[int] = []
        self._epoch: list[int] = []  # the epoch in progress, 1-based
        self._target: list[int] = []
        self._kind: list[JobKind] = []
        self._left: list[int] = []  # visits left in the current pass
        self._on: list[int] = []  # partition index it runs on, or -1
        self._order: list[tuple[int, ...]] = []  # seeded TRAIN pass: partition indices
        self._need: npt.NDArray[np.bool_] = np.zeros((_INITIAL_SLOTS, n_parts), dtype=bool)
        self._need_t: npt.NDArray[np.bool_] = np.zeros((n_parts, _INITIAL_SLOTS), dtype=bool)
        self._free: npt.NDArray[np.bool_] = np.zeros(_INITIAL_SLOTS, dtype=bool)

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
    def done(self) -> bool:
        """True when no model is left to train (dropped jobs may still be draining)."""
        return not self._slot

    @property
    def active_models(self) -> frozenset[int]:
        """Ids of the models added and not yet completed."""
        return frozenset(self._slot)

    @property
    def running(self) -> Mapping[int, Job]:
        """Partition id -> the current job on it (dropped jobs are in ``draining``)."""
        return {self._pids[i]: job for i, job in enumerate(self._job) if job is not None}

    @property
    def draining(self) -> Mapping[int, Job]:
        """Partition id -> a dropped job whose end has not been reported yet."""
        return {self._pids[i]: job for i, job in enumerate(self._drain) if job is not None}

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
        """True when ``job`` is the live job on its partition, i.e. its result counts.

        False for a dropped job (see ``ModelReset``) and for a job never issued.
        """
        i = self._pindex.get(job.partition)
        return i is not None and self._job[i] == job

    # --- events ------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; return its notifications, then RunJob for each filled partition.

        Raises ValueError for an event that contradicts the state (a programming error in
        the caller): adding an active model, ``start_epoch > target_epoch``, finishing or
        failing a job that is not running, resetting an unknown model. TypeError for an
        object that is not an event. The state is unchanged when it raises.
        """
        if isinstance(event, JobFinished):
            return self._on_job_end(event.job, succeeded=True)
        if isinstance(event, JobFailed):
            return self._on_job_end(event.job, succeeded=False)
        if isinstance(event, ModelAdded):
            return self._on_added(event)
        if isinstance(event, ModelReset):
            return self._on_reset(event.model_id)
        if isinstance(event, ModelRemoved):
            return self._on_removed(event.model_id)
        raise TypeError(f"The value of event is {event!r}, but must be one of {Event}.")

    def _on_added(self, event: ModelAdded) -> list[Instruction]:
        m, start, target = event.model_id, event.start_epoch, event.target_epoch
        if m in self._slot:
            raise ValueError(f"ModelAdded for model {m}, but model {m} is already active.")
        if start < 0:
            raise ValueError(f"ModelAdded for model {m} has start_epoch {start}, must be >= 0.")
        if start > target:
            raise ValueError(
                f"ModelAdded for model {m} has start_epoch {start} > target_epoch {target}."
            )
        if start == target:
            self._counters.models_completed += 1
            return [ModelCompleted(m, target)]
        s = self._alloc_slot(m, epoch=start + 1, target=target)
        self._start_pass(s, JobKind.TRAIN)
        self._free[s] = True
        out: list[Instruction] = []
        self._place(s, out)
        return out

    def _on_job_end(self, job: Job, *, succeeded: bool) -> list[Instruction]:
        name = "JobFinished" if succeeded else "JobFailed"
        i = self._pindex.get(job.partition)
        if i is None:
            raise ValueError(f"{name} for {job}, but partition {job.partition} is unknown.")
        out: list[Instruction] = []
        if self._job[i] != job:
            if self._drain[i] != job:
                raise ValueError(
                    f"{name} for {job}, but partition {job.partition} runs {self._job[i]}."
                )
            # The end of a dropped job: the worker is free again; no progress is made.
            self._drain[i] = None
            self._counters.drained += 1
            self._set_idle(i)
            self._fill(i, out)
            return out

        s = self._slot[job.model_id]
        self._job[i] = None
        self._on[s] = -1
        alive = True  # False once the model completed and left
        if succeeded:
            self._need[s, i] = False
            self._need_t[i, s] = False
            self._pending[i] -= 1
            self._left[s] -= 1
            if self._left[s] == 0:
                alive = self._end_pass(s, out)
            elif self._follows_order(s):
                self._set_need(s, self._order[s][len(self._pids) - self._left[s]])
        else:
            self._counters.failures += 1  # the visit stays pending
        if alive:
            self._free[s] = True
        self._set_idle(i)
        self._fill(i, out)
        if alive and self._free[s]:
            self._place(s, out)
        return out

    def _on_reset(self, m: int) -> list[Instruction]:
        s = self._slot.get(m)
        if s is None:
            raise ValueError(f"ModelReset for model {m}, but model {m} is not active.")
        self._counters.resets += 1
        i = self._on[s]
        if i >= 0:
            # Its job is dropped but may still run: the partition drains, not idles.
            self._drain[i] = self._job[i]
            self._job[i] = None
            self._on[s] = -1
        self._start_pass(s, JobKind.TRAIN)
        self._free[s] = True
        out: list[Instruction] = []
        self._place(s, out)
        return out

    def _on_removed(self, m: int) -> list[Instruction]:
        s = self._slot.get(m)
        if s is None:
            raise ValueError(f"ModelRemoved for model {m}, but model {m} is not active.")
        i = self._on[s]
        out: list[Instruction] = []
        if i >= 0:
            # As for a reset: its job may still run, so the partition drains.
            self._drain[i] = self._job[i]
            self._job[i] = None
            self._on[s] = -1
        self._pending -= self._need[s]
        self._need[s] = False
        self._need_t[:, s] = False
        self._release_slot(s)
        return out

    # --- transitions ---------------------------------------------------------------------

    def _end_pass(self, s: int, out: list[Instruction]) -> bool:
        """Move model ``s`` past a finished pass; False when the model completed."""
        if self._kind[s] is JobKind.TRAIN and self._evaluate:
            self._start_pass(s, JobKind.EVAL)
            return True
        m, epoch = self._model[s], self._epoch[s]
        out.append(EpochCompleted(m, epoch))
        self._counters.epochs_completed += 1
        if epoch >= self._target[s]:
            out.append(ModelCompleted(m, epoch))
            self._counters.models_completed += 1
            self._release_slot(s)
            return False
        self._epoch[s] = epoch + 1
        self._start_pass(s, JobKind.TRAIN)
        return True

    def _start_pass(self, s: int, kind: JobKind) -> None:
        """Every partition is pending again for model ``s`` (also used by a reset); in a
        seeded TRAIN pass only the first of its order is needed now."""
        row = self._need[s]
        self._pending -= row
        self._left[s] = len(self._pids)
        self._kind[s] = kind
        if self._follows_order(s):
            order = train_order(self._seed, self._model[s], self._epoch[s], self._pids)
            self._order[s] = tuple(self._pindex[p] for p in order)
            row[:] = False
            row[self._order[s][0]] = True
        else:
            row[:] = True
        self._need_t[:, s] = row
        self._pending += row

    def _follows_order(self, s: int) -> bool:
        return self._seeded_order and self._kind[s] is JobKind.TRAIN

    def _set_need(self, s: int, i: int) -> None:
        """Model ``s`` now needs partition ``i`` (the next of its seeded order)."""
        self._need[s, i] = True
        self._need_t[i, s] = True
        self._pending[i] += 1

    def _set_idle(self, i: int) -> None:
        self._idle[i] = True
        self._n_idle += 1

    def _start_job(self, s: int, i: int, out: list[Instruction]) -> None:
        job = Job(self._model[s], self._pids[i], self._epoch[s], self._kind[s])
        self._job[i] = job
        self._on[s] = i
        self._free[s] = False
        self._idle[i] = False
        self._n_idle -= 1
        self._counters.decisions += 1
        out.append(RunJob(job))

    def _fill(self, i: int, out: list[Instruction]) -> None:
        """Idle partition ``i`` takes a uniformly random runnable model, if it has one."""
        pending = int(self._pending[i])
        if pending == 0:
            return
        n = self._n_slots
        if pending * 4 >= n:
            row, free = self._need_t[i], self._free
            for _ in range(_REJECTION_DRAWS):
                s = self._rand.index(n)
                if row[s] and free[s]:
                    self._counters.sampled_by_rejection += 1
                    self._start_job(s, i, out)
                    return
        candidates = np.flatnonzero(self._need_t[i, :n] & self._free[:n])
        if candidates.size:
            self._counters.sampled_by_scan += 1
            self._start_job(int(candidates[self._rand.index(candidates.size)]), i, out)

    def _place(self, s: int, out: list[Instruction]) -> None:
        """Free model ``s`` goes to a uniformly random idle partition it needs, if any."""
        if self._n_idle == 0:
            return
        candidates = np.flatnonzero(self._need[s] & self._idle)
        if candidates.size:
            self._counters.placements += 1
            self._start_job(s, int(candidates[self._rand.index(candidates.size)]), out)

    # --- slots ---------------------------------------------------------------------------

    def _alloc_slot(self, m: int, *, epoch: int, target: int) -> int:
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
        return s

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
        self._need, self._need_t, self._free = need, need_t, free

    def _release_slot(self, s: int) -> None:
        # A completed model needs nothing: its row is already clear.
        del self._slot[self._model[s]]
        self._model[s] = -1
        self._free[s] = False
        self._free_slots.append(s)

    # --- invariants ----------------------------------------------------------------------

    def validate_state(self) -> None:
        """Check every invariant; raise SchedulerStateError naming the first broken one.

        O(M*P): meant for tests and debugging, not for the hot path.
        """
        check_scheduler_state(self)
