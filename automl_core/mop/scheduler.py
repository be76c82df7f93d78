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

import numpy as np

from automl_core.mop._scheduler_checks import SchedulerStateError, check_scheduler_state
from automl_core.mop._scheduler_state import SchedulerCounters, _SchedulerState
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


class MopScheduler(_SchedulerState):
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
        super().__init__(tuple(pids), int(seed))
        self._evaluate = bool(evaluate)
        self._seed = int(seed)
        self._seeded_order = bool(seeded_order)

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
    def n_draining(self) -> int:
        """How many partitions are in ``draining`` (O(1))."""
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
            self._n_drain -= 1
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
            self._n_drain += 1
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
            self._n_drain += 1
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

    # --- invariants ----------------------------------------------------------------------

    def validate_state(self) -> None:
        """Check every invariant; raise SchedulerStateError naming the first broken one.

        O(M*P): meant for tests and debugging, not for the hot path.
        """
        check_scheduler_state(self)
