"""The invariants of ``MopScheduler``, checked from its private state.

Kept apart from the scheduler so that the state machine reads as the transitions only;
``MopScheduler.validate_state()`` is the public entry point.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from automl_core.mop.types import JobKind

if TYPE_CHECKING:
    from automl_core.mop.scheduler import MopScheduler


class SchedulerStateError(AssertionError):
    """``validate_state()`` found a broken invariant: a bug in the scheduler."""


def check_scheduler_state(sch: MopScheduler) -> None:
    """Raise SchedulerStateError naming the first invariant of ``sch`` that is broken."""

    def fail(message: str) -> None:
        raise SchedulerStateError(message)

    n_parts, n = len(sch._pids), sch._n_slots
    need, need_t, free = sch._need[:n], sch._need_t[:, :n], sch._free[:n]

    if not np.array_equal(need, need_t.T):
        fail("need and need_t disagree")
    priorities = Counter(int(sch._prio[s]) for s in sch._slot.values())
    if priorities != sch._n_with_prio or 0 in sch._n_with_prio.values():
        fail(f"priority counts {dict(sch._n_with_prio)} are not the active models' {priorities}")
    if (
        np.any(sch._need[n:])
        or np.any(sch._need_t[:, n:])
        or np.any(sch._free[n:])
        or np.any(sch._single[n:])
    ):
        fail("a never-used slot has state")
    if not np.array_equal(sch._pending, need_t.sum(axis=1)):
        fail(f"pending counts {sch._pending.tolist()} != {need_t.sum(axis=1).tolist()}")

    active = {s for s in range(n) if sch._model[s] != -1}
    if {sch._model[s]: s for s in active} != sch._slot:
        fail("the model -> slot index disagrees with the slots")
    if set(sch._free_slots) != set(range(n)) - active:
        fail("the list of reusable slots is wrong")

    for s in range(n):
        m = sch._model[s]
        if m == -1:
            if need[s].any() or free[s]:
                fail(f"unused slot {s} still needs partitions or is free")
            continue
        if sch._left[s] == 0:
            fail(f"model {m} has no visit left in its pass but is still active")
        if sch._follows_order(s):
            # A seeded TRAIN pass needs exactly the next partition of its order.
            nxt = sch._order[s][n_parts - sch._left[s]]
            if np.flatnonzero(need[s]).tolist() != [nxt]:
                fail(f"model {m} needs {np.flatnonzero(need[s]).tolist()}, not its next {nxt}")
        elif sch._left[s] != int(need[s].sum()):
            fail(f"model {m} has {sch._left[s]} visits left but needs {int(need[s].sum())}")
        if not 1 <= sch._epoch[s] <= sch._target[s]:
            fail(f"model {m} is in epoch {sch._epoch[s]} of target {sch._target[s]}")
        if sch._kind[s] is JobKind.EVAL and not sch._evaluate:
            fail(f"model {m} evaluates although evaluate=False")
        if bool(sch._single[s]) != (int(need[s].sum()) == 1):
            fail(f"model {m}: single={bool(sch._single[s])}, but it needs {int(need[s].sum())}")
        i = sch._on[s]
        if bool(free[s]) != (i == -1):
            fail(f"model {m}: free={bool(free[s])} but runs on partition index {i}")
        if i != -1:
            job = next((j for j in (sch._job[i], sch._next[i]) if j and j.model_id == m), None)
            if job is None:
                fail(f"model {m} is said to be on partition {sch._pids[i]}, which has not got it")
            elif (job.epoch, job.kind) != (sch._epoch[s], sch._kind[s]) or not need[s, i]:
                fail(f"model {m} runs {job}, which is not a pending visit of its pass")

    # A model on at most one partition; a partition runs at most one current job and
    # queues at most one more, only behind a current job and with nothing dropped there.
    seen: dict[int, int] = {}
    for i in range(n_parts):
        job, queued, dropped = sch._job[i], sch._next[i], sch._drain[i]
        if queued is not None and (job is None or dropped or not sch._queue_jobs):
            fail(f"partition {sch._pids[i]} queues {queued} behind {job} and {dropped}")
        if queued is not None and not sch._single[sch._slot.get(queued.model_id, 0)]:
            fail(f"partition {sch._pids[i]} queues {queued}, whose model needs several")
        if len(dropped) > 2 or (job is not None and len(dropped) > 1):
            fail(f"partition {sch._pids[i]} holds {job} and the dropped {dropped}")
        for held in (job, queued):
            if held is None:
                continue
            if held.model_id in seen:
                fail(f"model {held.model_id} is on partitions {seen[held.model_id]} and {i}")
            seen[held.model_id] = i
            slot = sch._slot.get(held.model_id)
            if slot is None or sch._on[slot] != i:
                fail(f"partition {sch._pids[i]} runs {held}, but the model is not there")
        if bool(sch._idle[i]) != (job is None and not dropped):
            fail(f"partition {sch._pids[i]}: idle flag {bool(sch._idle[i])} is wrong")
    if sch._n_idle != int(sch._idle.sum()):
        fail(f"idle count {sch._n_idle} != {int(sch._idle.sum())}")
    n_drain = sum(len(jobs) for jobs in sch._drain)
    if sch._n_drain != n_drain:
        fail(f"draining count {sch._n_drain} != {n_drain}")

    # Work conservation: no idle partition while a free model needs it.
    runnable = need_t[sch._idle] & free
    if runnable.any():
        i = int(np.flatnonzero(sch._idle)[np.flatnonzero(runnable.any(axis=1))[0]])
        s = int(np.flatnonzero(need_t[i] & free)[0])
        fail(f"partition {sch._pids[i]} is idle although model {sch._model[s]} could run there")
    can_queue = np.array([sch._can_queue(i) for i in range(n_parts)], dtype=bool)
    queueable = need_t[can_queue] & free & sch._single[:n]
    if queueable.any():
        i = int(np.flatnonzero(can_queue)[np.flatnonzero(queueable.any(axis=1))[0]])
        s = int(np.flatnonzero(need_t[i] & free & sch._single[:n])[0])
        fail(
            f"partition {sch._pids[i]} queues nothing although model {sch._model[s]} could wait there"
        )
