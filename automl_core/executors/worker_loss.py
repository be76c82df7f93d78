"""Worker loss on the Dask executor: which worker holds which partition, and what died
with a worker that left.

``DaskExecutor`` (``dask_executor.py``) submits and collects jobs; this base keeps the
partitions on live workers and turns a lost worker into failed results (see the
implementation notes there, "Worker loss"). Every call into the Dask scheduler here has
a deadline: Dask alone waits for ever on a dead worker.

Only workers with exactly one thread are used. A worker with two runs two jobs at once
in one process: it trains two models at a time (MOP allows one), and torch's process-wide
RNG state, which each job saves and restores, is shared between them, so the same seed
no longer repeats a search. A cluster that has such a worker when the executor starts is
refused (UserInputError, nothing has trained yet); one that joins later is left idle,
with a warning: it never holds a partition, so no job is pinned to it, and the search
goes on on the workers it started with (stopping a long search for a stray worker would
throw its work in flight away).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from automl_core.errors import UserInputError
from automl_core.executors.dask_worker import DataRef, warm_up
from automl_core.mop.executor import JobResult
from automl_core.mop.types import Job

# The executor's logger: a lost worker is reported under the executor's name.
log = logging.getLogger("automl_core.executors.dask_executor")

SCHEDULER_CALL_S = 10.0  # one request to the scheduler (identity, cancel)
SCHEDULER_SILENCE_S = 60.0  # no answer from the scheduler for this long: give up
WORKERS_TIMEOUT_S = 120.0
WORKERS_POLL_S = 0.5  # how often to look for a usable worker while none is live
_UNUSABLE = ("cancelled", "lost", "error")  # future states whose data will never come


class _WorkerGone(Exception):
    """The worker that holds a result left the cluster while we waited for it."""


@dataclass
class _InFlight:
    job: Job
    result: Any  # Future of the job's output: (state bytes, visits of its epoch)
    worker: str
    input_state: Any  # Future the job reads, or None
    submitted_at: float


@dataclass
class _StateHolder:
    """Where a model's latest state lives, and the job that made it."""

    future: Any
    worker: str
    job: Job


class WorkerLossHandling:
    """Partition owners, live workers and lost work, for ``DaskExecutor`` to inherit."""

    _client: Any
    _data: DataRef
    _partitions: list[int]
    _owner: dict[int, str]  # partition -> the worker that holds it
    _inflight: dict[Any, _InFlight]  # result future key -> job
    _latest: dict[int, _StateHolder]  # model id -> its latest state
    _warming: dict[str, tuple[int, Any]]  # worker -> (partition, warm-up future)
    _live: list[str]  # live workers with one thread: the only ones used
    _refused: dict[str, int]  # live workers with another thread count -> their threads
    _warned: set[str]  # refused workers already warned about
    _heard_from_scheduler: float
    _last_poll: float

    def _failed(
        self, flight: _InFlight, error: str, *, state_lost: bool = False, lost: bool = True
    ) -> JobResult:
        """A job that did not finish; ``lost`` unless the job itself raised."""
        now = time.time()
        return JobResult(
            flight.job, flight.worker, now, now, error=error, state_lost=state_lost, lost=lost
        )

    # --- cluster calls with deadlines ----------------------------------------------------

    def _sync(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the client coroutine ``fn`` with the scheduler-call deadline."""
        return self._client.sync(fn, *args, callback_timeout=SCHEDULER_CALL_S, **kwargs)

    def _cancel(self, futures: Iterable[Any]) -> None:
        """Cancel ``futures`` (and what depends on them) so nothing waits on a dead worker."""
        futures = [f for f in futures if f is not None]
        if futures:
            try:
                # Client.cancel takes no timeout; its coroutine does the same work.
                self._sync(self._client._cancel, futures, reason="worker lost")
            except TimeoutError:
                log.warning("the Dask scheduler did not take a cancel in time")

    def _live_workers(self) -> list[str]:
        """Addresses of the one-thread workers the scheduler knows now (the others are
        in ``_refused``).

        A slow answer keeps the last known list; raises RuntimeError when the scheduler
        has not answered for ``SCHEDULER_SILENCE_S``.
        """
        try:
            scheduler = self._client.scheduler
            if scheduler is None:
                raise OSError("the client is not connected to a scheduler")
            info = self._sync(scheduler.identity, n_workers=-1)
        except (TimeoutError, OSError) as exc:
            silent = time.monotonic() - self._heard_from_scheduler
            if silent > SCHEDULER_SILENCE_S:
                raise RuntimeError(
                    f"the Dask scheduler has not answered for {silent:.0f} s"
                ) from exc
            log.warning("the Dask scheduler did not answer in time: %r", exc)
            return self._live
        self._heard_from_scheduler = time.monotonic()
        workers = info["workers"]
        threads = {w: int(workers[w].get("nthreads", 0)) for w in workers}
        self._refused = {w: n for w, n in threads.items() if n != 1}
        self._live = sorted(w for w in threads if w not in self._refused)
        return self._live

    def _first_workers(self, address: str) -> list[str]:
        """The live workers when the executor starts; UserInputError, naming the
        cluster's ``address``, when any of them has other than one thread."""
        self._refused, self._warned = {}, set()
        live = self._live_workers()
        if self._refused:
            raise UserInputError(
                f"The Dask cluster at {address} has workers without exactly one thread: "
                f"{_threads(self._refused)}. A worker trains one model at a time here, and "
                "the same --seed repeats a search only then. Start the workers with "
                "`dask worker ADDRESS --nthreads 1` (one worker per GPU or core, as "
                "docker/ does), or leave out --cluster and AUTOML_DASK_ADDRESS to train "
                "on a local cluster of the run's own."
            )
        return live

    def _warn_refused(self) -> None:
        """Warn once about each worker that joined with other than one thread."""
        new = {w: n for w, n in self._refused.items() if w not in self._warned}
        if new:
            self._warned.update(new)
            log.warning(
                "Dask workers without exactly one thread joined: %s; they get no "
                "partition and train nothing (start workers with `--nthreads 1`)",
                _threads(new),
            )

    # --- worker loss -----------------------------------------------------------------------

    def _load(self, live: Iterable[str]) -> dict[str, int]:
        """How many partitions each live worker holds."""
        load = dict.fromkeys(live, 0)
        for w in self._owner.values():
            if w in load:
                load[w] += 1
        return load

    def _assign_partitions(self, live: list[str]) -> None:
        """Give every partition without a live owner to the least loaded live worker."""
        if not live:
            raise RuntimeError("the Dask cluster has no live worker")
        load = self._load(live)
        for p in self._partitions:
            if self._owner.get(p) not in load:
                target = min(live, key=lambda w: (load[w], live.index(w)))
                self._owner[p] = target
                load[target] += 1

    def _warm_idle_workers(self, live: list[str]) -> None:
        """Ready a worker that holds no partition (a restarted one) to take one over from
        a worker that holds several; the partition moves at its next submit once ready."""
        for w, (_, future) in list(self._warming.items()):
            if w not in live or future.status in _UNUSABLE:
                del self._warming[w]
                self._cancel([future])
        load = self._load(live)
        warming = {p for p, _ in self._warming.values()}
        for idle in [w for w in live if load[w] == 0 and w not in self._warming]:
            crowded = [p for p in self._partitions if load[self._owner[p]] > 1]
            candidates = [p for p in crowded if p not in warming]
            if not candidates:
                return
            p = max(candidates, key=lambda q: load[self._owner[q]])
            pinned = {"workers": [idle], "allow_other_workers": False, "pure": False}
            self._warming[idle] = (p, self._client.submit(warm_up, self._data, p, **pinned))
            warming.add(p)

    def _move_if_warm(self, partition: int) -> None:
        """Move ``partition`` (no job of it in flight) to a worker warmed up for it."""
        for w, (p, future) in list(self._warming.items()):
            if p != partition or future.status != "finished":
                continue
            del self._warming[w]
            if self._load(self._live).get(self._owner[p], 0) > 1 and w in self._live:
                log.info("partition %d moves to worker %s", p, w)
                self._owner[p] = w

    def _await_a_worker(self) -> set[str]:
        """Every worker is gone (e.g. two lost in a row on a 2-worker cluster): wait for a
        nanny's restart or a new one-thread worker, up to ``WORKERS_TIMEOUT_S``, then raise.
        (Not ``Client.wait_for_workers``: a refused worker would end its wait.)"""
        log.warning(
            "no live Dask worker; waiting up to %.0f s for one to (re)join", WORKERS_TIMEOUT_S
        )
        deadline = time.monotonic() + WORKERS_TIMEOUT_S
        while time.monotonic() < deadline:
            time.sleep(WORKERS_POLL_S)
            live = self._live_workers()
            if live:
                return set(live)
        refused = f" (refused: {_threads(self._refused)})" if self._refused else ""
        raise RuntimeError(
            f"the Dask cluster has had no live worker with one thread for "
            f"{WORKERS_TIMEOUT_S:.0f} s{refused}"
        )

    def _poll_workers(self) -> list[JobResult]:
        """Failed results for the work lost with workers that left; reassigns partitions."""
        self._last_poll = time.monotonic()
        live = set(self._live_workers()) or self._await_a_worker()
        self._warn_refused()
        used = set(self._owner.values()) | {f.worker for f in self._inflight.values()}
        dead = {w for w in used | {h.worker for h in self._latest.values()} if w not in live}
        if dead:
            log.warning("lost Dask workers %s; rerunning their work elsewhere", sorted(dead))
        self._assign_partitions(sorted(live))
        self._warm_idle_workers(sorted(live))
        return self._fail_lost_work(dead) if dead else []

    def _fail_lost_work(self, dead: set[str]) -> list[JobResult]:
        """Cancel what lived on ``dead`` workers and report it: in-flight jobs failed,
        lost states as ``state_lost`` (on the model's in-flight job if it has one)."""
        # Bytes already pulled for a lost state stay: the runner may still ask for them
        # (its epoch ended in the same batch of results), and they are the right ones.
        lost = {m: h for m, h in self._latest.items() if h.worker in dead}
        for m in lost:
            del self._latest[m]
        results: list[JobResult] = []
        doomed: list[Any] = [h.future for h in lost.values()]
        for key, flight in list(self._inflight.items()):
            held = lost.get(flight.job.model_id)
            reads_lost = held is not None and flight.input_state is held.future
            if flight.worker in dead or reads_lost:
                del self._inflight[key]
                doomed.append(flight.result)
                results.append(
                    self._failed(flight, f"worker {flight.worker} lost", state_lost=reads_lost)
                )
                if reads_lost:
                    del lost[flight.job.model_id]
        for holder in lost.values():
            now = time.time()
            results.append(
                JobResult(
                    holder.job,
                    holder.worker,
                    now,
                    now,
                    error="state lost",
                    state_lost=True,
                    lost=True,
                )
            )
        self._cancel(doomed)
        return results


def _threads(workers: dict[str, int]) -> str:
    """``tcp://a:1 (2 threads), ...`` for the error and the warning."""
    return ", ".join(f"{w} ({n} thread{'' if n == 1 else 's'})" for w, n in sorted(workers.items()))
