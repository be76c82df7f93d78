"""The model hopper scheduler: a pure state machine, events in, instructions out.

Implementation notes
====================

What it decides. The data lives in P partitions that never move, one worker slot each.
An epoch of a model is a TRAIN pass (the model visits every partition exactly once) and
then, with ``evaluate=True``, an EVAL pass (every partition once more, after the whole
train pass). A model runs on at most one partition at a time, because its state moves
with it. This is Cerebro's randomized asynchronous schedule: there is no barrier between
hops; whenever a partition is idle it takes, uniformly at random, one model that is not
running anywhere and still needs that partition in its current pass. Priorities
(``ModelAdded.priority``) narrow that pick to the candidates of the highest priority;
equal priorities leave Cerebro's schedule as it is.

Repeatability. With ``seeded_order=True`` (the default) a TRAIN pass follows
``visit_order.train_order(seed, model, epoch)``: the model needs only the next partition
of its order, so timing (and priority) decides when it trains, never in which order, and
its weights depend on the seed alone. ``seeded_order=False`` is Cerebro's free order (any
pending partition: sooner starts, timing-dependent weights). EVAL passes change no
weights and keep the free order either way.

Order of the decisions inside one ``handle`` call. Before every call no idle partition
has a runnable model (the scheduler is work-conserving), and with queued jobs no
partition that could queue one has a queueable model. An event frees at most one place
on one partition and at most one model, so afterwards few decisions are needed:

1. the partition's queued job (if any) takes the place of the job that ended; an idle
   partition picks uniformly among its runnable models (it may pick the model that just
   left it, when that model started a new pass: the state stays where it is); then it
   queues one more the same way;
2. the freed model, if still free, goes to an idle partition that it needs, chosen
   uniformly among those, or else is queued on the one partition it needs. No other
   partition can have gained a candidate.

Queued jobs (``queue_jobs=True``, for executors that keep a second job waiting on a
worker). A worker that must wait for the driver's round trip (its job's end reported,
the next job decided and sent) idles between jobs; so a partition that runs a current
job may also hold one *queued* current job, which its worker starts as soon as the first
ends. Only a free model that needs exactly one partition now (the next of its seeded
order, or the last of a free pass) is queued, so queueing never takes a choice of
partition away from a model; a partition's next model is the same pick, made earlier.
A model is running or queued on at most one partition. A job is queued only behind a
current job, on a partition with no dropped job: a worker's queue holds at most two
jobs, whose ends may be reported in either order (a queued job can fail before it starts).

Dropped jobs (``ModelReset`` while the model runs or is queued). The model is off every
worker at once and all visits of its current epoch are pending again, but its old job
is still physically on the executor, so it stays *draining* on its partition until the
runner reports that job's end with ``JobFinished`` or ``JobFailed``; a partition with a
dropped job is not idle and takes no queued job. That report is accepted and changes no
model's progress. The runner must call ``is_current(job)`` *before* handing over a
result to know whether to keep it (write its metrics and checkpoint) or throw it away.
Never giving a partition a new job while an old one may run there makes this safe with
real executors. When a failure lost the model's state, send ``ModelReset(model)``
first and then ``JobFailed(job)``: the failed visit is then not wastefully retried from
the lost state. A failed job (``JobFailed`` for a current job) just makes its visit
pending again, retried on the same partition whenever that partition next picks it.
``ModelRemoved`` (a model that cannot train, e.g. its job keeps failing) takes it out
unfinished (no ``ModelCompleted``): its visits go, its slot is freed, its job drains.

Data structures and costs (M = model slots ever in use at once, P = partitions).

* ``need`` (M x P) and its transpose ``need_t``: numpy booleans, "model still needs
  this partition in its current pass" (seeded TRAIN pass: "is its next one"); both, so
  that a row scan is contiguous either way. 2*M*P bytes: 20 MB for 10,000 models x
  1,000 partitions (per-partition Python sets of ids: about a gigabyte).
* ``free``: numpy booleans over slots, "active and not running"; ``idle``: numpy
  booleans over partitions; ``pending``: per partition, how many models still need it.
* A partition picks a model by rejection sampling over the slots: draw a slot uniformly,
  accept it if it needs the partition and is free. Each draw is O(1). Rejection only runs
  when ``pending * 4 >= M`` (candidates are likely dense) and gives up after a few draws;
  then one vectorised scan ``flatnonzero(need_t[p] & free)`` (O(M) in C) lists the
  candidates exactly. Either branch picks uniformly among the candidates, so the mixture
  does too. Rejection alone can degenerate (e.g. near the end, when the models that still
  need a partition are all running elsewhere); the scan bounds that case. With unequal
  priorities every pick scans, keeping the candidates of the highest (``prio``, O(M)).
* A freed model finds idle partitions with ``flatnonzero(need[m] & idle)`` (O(P) in C),
  skipped entirely when no partition is idle, which is the common case under load.
* Starting a pass sets one row and one column: O(P) in C, i.e. O(1) per job it creates.
  Finishing a job flips two booleans and a counter: O(1).

A decision costs O(1) expected while candidates are dense, at worst one O(M) or O(P)
vectorised scan; nothing is quadratic. Slots of completed models are reused. Random
numbers come from the seeded numpy Generator in batches (a scalar draw costs ~1 us);
the same seed and event sequence give the same instructions.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    partition that has runnable work (and, with ``queue_jobs``, queue one job behind a
    running one). See the module notes for the schedule.
    """

    def __init__(
        self,
        partitions: Sequence[int],
        *,
        seed: int,
        evaluate: bool = True,
        seeded_order: bool = True,
        queue_jobs: bool = False,
    ) -> None:
        """Raises ValueError when ``partitions`` is empty or repeats an id.

        ``seeded_order``: each TRAIN pass follows the model's seeded order of partitions
        (see the module notes), so that a search repeats bit for bit. ``queue_jobs``: a
        busy partition may hold one queued job (see "Queued jobs"); for executors whose
        workers start a queued job when the running one ends.
        """
        pids = [int(p) for p in partitions]
        if not pids:
            raise ValueError("The value of partitions is empty, but must list at least one id.")
        if len(set(pids)) != len(pids):
            raise ValueError(f"The value of partitions is {pids}, but ids must be unique.")
        super().__init__(
            tuple(pids),
            int(seed),
            evaluate=bool(evaluate),
            seeded_order=bool(seeded_order),
            queue_jobs=bool(queue_jobs),
        )

    # --- events ------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; return its notifications, then RunJob for each job started.

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
        s = self._alloc_slot(m, epoch=start + 1, target=target, priority=event.priority)
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
        if self._job[i] == job:
            self._job[i], self._next[i] = self._next[i], None
        elif self._next[i] == job:
            self._next[i] = None  # it ended before it started: it failed at once
        elif job in self._drain[i]:
            # The end of a dropped job: its place is free again; no progress is made.
            self._drain[i].remove(job)
            self._n_drain -= 1
            self._counters.drained += 1
            self._refill(i, out)
            return out
        else:
            raise ValueError(
                f"{name} for {job}, but partition {job.partition} runs {self._job[i]}."
            )

        s = self._slot[job.model_id]
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
                self._single[s] = self._left[s] == 1
        else:
            self._counters.failures += 1  # the visit stays pending
        if alive:
            self._free[s] = True
        self._refill(i, out)
        if alive and self._free[s]:
            self._place(s, out)
        return out

    def _on_reset(self, m: int) -> list[Instruction]:
        s = self._slot.get(m)
        if s is None:
            raise ValueError(f"ModelReset for model {m}, but model {m} is not active.")
        self._counters.resets += 1
        self._drop_job(s)
        self._start_pass(s, JobKind.TRAIN)
        self._free[s] = True
        out: list[Instruction] = []
        self._place(s, out)
        return out

    def _on_removed(self, m: int) -> list[Instruction]:
        s = self._slot.get(m)
        if s is None:
            raise ValueError(f"ModelRemoved for model {m}, but model {m} is not active.")
        self._drop_job(s)
        self._pending -= self._need[s]
        self._need[s] = False
        self._need_t[:, s] = False
        self._release_slot(s)
        return []

    # --- transitions ---------------------------------------------------------------------

    def _drop_job(self, s: int) -> None:
        """Model ``s`` leaves its partition; its job may still run there, so it drains."""
        i = self._on[s]
        if i < 0:
            return
        head = self._job[i]
        dropped: Job | None
        if head is not None and head.model_id == self._model[s]:
            dropped, self._job[i], self._next[i] = head, self._next[i], None
        else:
            dropped, self._next[i] = self._next[i], None
        assert dropped is not None
        self._drain[i].append(dropped)
        self._n_drain += 1
        self._on[s] = -1

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
        self._single[s] = self._follows_order(s) or len(self._pids) == 1
        self._need_t[:, s] = row
        self._pending += row

    def _follows_order(self, s: int) -> bool:
        return self._seeded_order and self._kind[s] is JobKind.TRAIN

    def _start_job(self, s: int, i: int, out: list[Instruction]) -> None:
        """Start model ``s`` on idle partition ``i``, or queue it on busy ``i``."""
        job = Job(self._model[s], self._pids[i], self._epoch[s], self._kind[s])
        if self._idle[i]:
            self._job[i] = job
            self._idle[i] = False
            self._n_idle -= 1
        else:
            self._next[i] = job
            self._counters.queued += 1
        self._on[s] = i
        self._free[s] = False
        self._counters.decisions += 1
        out.append(RunJob(job))

    def _refill(self, i: int, out: list[Instruction]) -> None:
        """Partition ``i`` lost a job: idle when empty, then filled as far as it can be."""
        if self._job[i] is None and not self._drain[i]:
            self._set_idle(i)
            self._fill(i, out)
        if self._can_queue(i):
            self._fill(i, out)

    def _fill(self, i: int, out: list[Instruction]) -> None:
        """Partition ``i`` (idle, or able to queue) takes a uniformly random model that
        it can take, if it has one; an idle one then queues a second the same way."""
        s = self._pick(i, queue=not self._idle[i])
        if s is not None:
            self._start_job(s, i, out)
            if self._can_queue(i):
                self._fill(i, out)

    def _pick(self, i: int, *, queue: bool) -> int | None:
        """A uniform pick among the free models of the highest priority that need
        partition ``i`` (that need only ``i`` when ``queue``), by rejection sampling when
        dense and all priorities are equal, else by a scan."""
        if not self._pending[i]:
            return None
        n, row, free, single = self._n_slots, self._need_t[i], self._free, self._single
        if self._pending[i] * 4 >= n and len(self._n_with_prio) <= 1:
            for _ in range(_REJECTION_DRAWS):
                s = self._rand.index(n)
                if row[s] and free[s] and (not queue or single[s]):
                    self._counters.sampled_by_rejection += 1
                    return s
        mask = row[:n] & free[:n]
        candidates = np.flatnonzero(mask & single[:n] if queue else mask)
        if not candidates.size:
            return None
        candidates = self._top_priority(candidates)
        self._counters.sampled_by_scan += 1
        return int(candidates[self._rand.index(candidates.size)])

    def _place(self, s: int, out: list[Instruction]) -> None:
        """Free model ``s`` goes to a uniformly random idle partition it needs, if any;
        else, when it needs one partition only, it is queued there if it can be."""
        i = -1
        if self._n_idle:
            candidates = np.flatnonzero(self._need[s] & self._idle)
            if candidates.size:
                i = int(candidates[self._rand.index(candidates.size)])
        if i < 0 and self._queue_jobs and self._single[s]:
            i = int(np.flatnonzero(self._need[s])[0])
            i = i if self._can_queue(i) else -1
        if i >= 0:
            self._counters.placements += 1
            self._start_job(s, i, out)
            if self._can_queue(i):
                self._fill(i, out)

    # --- invariants ----------------------------------------------------------------------

    def validate_state(self) -> None:
        """Check every invariant; raise SchedulerStateError naming the first broken one.

        O(M*P): meant for tests and debugging, not for the hot path.
        """
        check_scheduler_state(self)
