"""The real executor: sub-epochs on Dask workers, one partition pinned to each worker.

Implementation notes
- Partitions never move while their worker lives: every job of partition p is submitted
  with ``workers=[owner(p)], allow_other_workers=False``; the worker reads p once and
  caches it (``dask_worker.load_partition``).
- The model state is what moves: a job's result (state, metadata) stays on the worker
  that made it, and the next job of that model takes the future as an argument, so Dask
  copies the state worker to worker. The driver only pulls the small metadata half
  (a second, tiny task on the same worker) and the state at epoch ends (checkpoints).
- Worker loss: the executor polls the scheduler for live workers. A partition whose
  worker died is given to a live worker (it is read again there, lazily). Jobs in flight
  on the dead worker come back failed; models whose latest state lived there, or whose
  in-flight job needed it, come back with ``state_lost`` so the runner resets them to
  their last checkpoint. Dask would otherwise try to recompute the lost state on a
  worker that no longer exists and wait forever.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl_core.executors.base import JobResult
from automl_core.executors.dask_worker import DataRef, job_meta, job_state, run_job
from automl_core.executors.spawn_safe import spawn_safe_main
from automl_core.mop.types import Job, JobKind

log = logging.getLogger(__name__)

LIVENESS_POLL_S = 0.5


@dataclass
class _InFlight:
    job: Job
    result: Any  # Future of (state, meta)
    meta: Any  # Future of meta
    worker: str
    input_state: Any  # Future the job reads, or None


@dataclass
class _StateHolder:
    """Where a model's latest state lives, and the job that made it."""

    future: Any
    worker: str
    job: Job


class DaskExecutor:
    """Runs jobs on a local Dask cluster (default) or an existing one (``address``).

    ``seed`` is the experiment's seed; a model's training seed is derived from it and the
    model id, so a rerun of the same model shuffles the same way.
    """

    def __init__(
        self,
        data: DataRef,
        partitions: Sequence[int],
        *,
        seed: int = 0,
        address: str | None = None,
        n_workers: int | None = None,
    ) -> None:
        from distributed import Client, LocalCluster

        # Local workers are spawned processes; a host program's __main__ (the `airflow`
        # command in a task) must not be re-run in them, now or when a worker restarts.
        self._main_guard = contextlib.ExitStack()
        self._data = data
        self._partitions = list(partitions)
        self._seed = seed
        self._cluster = None
        if address:
            self._client = Client(address, set_as_default=False)
        else:
            # One single-threaded worker process per partition; torch uses one thread each.
            self._main_guard.enter_context(spawn_safe_main())
            self._cluster = LocalCluster(
                n_workers=n_workers or len(self._partitions),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",  # a free port: never clash with another cluster
                memory_limit=0,
                silence_logs=logging.WARNING,
                env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
            self._client = Client(self._cluster, set_as_default=False)
        self._client.wait_for_workers(1, timeout=120)
        self._owner: dict[int, str] = {}
        self._assign_partitions(self._live_workers())
        self._inflight: dict[Any, _InFlight] = {}  # meta future key -> job
        self._latest: dict[int, _StateHolder] = {}  # model id -> its latest state
        self._pending_results: list[JobResult] = []
        self._last_poll = 0.0
        from distributed import as_completed

        self._completed = as_completed([], loop=self._client.loop, with_results=False)

    # --- Executor protocol ---------------------------------------------------------------

    @property
    def partitions(self) -> Sequence[int]:
        return self._partitions

    @property
    def client(self) -> Any:
        return self._client

    def owner(self, partition: int) -> str:
        """The worker address that holds ``partition`` now."""
        return self._owner[partition]

    def submit(self, job: Job, config: Mapping[str, Any], state: Any) -> None:
        worker = self._owner[job.partition]
        if any(f.job.partition == job.partition for f in self._inflight.values()):
            raise RuntimeError(f"partition {job.partition} already runs a job")
        holder = self._latest.get(job.model_id)
        input_state = state if not isinstance(state, bytes | type(None)) else None
        key = (
            f"{job.kind.value}-m{job.model_id}-e{job.epoch}-p{job.partition}-{uuid.uuid4().hex[:8]}"
        )
        pinned = {"workers": [worker], "allow_other_workers": False, "pure": False}
        result = self._client.submit(
            run_job,
            job.kind.value,
            job.model_id,
            job.partition,
            job.epoch,
            dict(config),
            state,
            self._data,
            self._model_seed(job.model_id),
            key=key,
            **pinned,
        )
        meta = self._client.submit(job_meta, result, key=f"meta-{key}", **pinned)
        self._inflight[meta.key] = _InFlight(job, result, meta, worker, input_state)
        if holder is not None and input_state is not holder.future:
            # A reset model restarts from checkpoint bytes: its old state is obsolete.
            self._latest.pop(job.model_id, None)
        self._completed.add(meta)

    def wait(self) -> list[JobResult]:
        if not self._inflight and not self._pending_results:
            raise RuntimeError("wait() called with no job in flight")
        while True:
            results = self._pending_results
            self._pending_results = []
            for meta in self._ready_metas():
                flight = self._inflight.pop(meta.key, None)
                if flight is not None:
                    results.append(self._result_of(flight))
            if time.monotonic() - self._last_poll >= LIVENESS_POLL_S:
                results.extend(self._handle_lost_workers())
            if results:
                return results

    def fetch_state(self, state: Any) -> bytes:
        if isinstance(state, bytes):
            return state
        # Gather the stored result: the worker serves it from memory even while it trains
        # another model, whereas a task would queue behind that training.
        return job_state(self._client.gather(state))

    def now(self) -> float:
        return time.time()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._main_guard.close()

    # --- internals ------------------------------------------------------------------------

    def _model_seed(self, model_id: int) -> int:
        return (self._seed * 1_000_003 + model_id) % (2**31)

    def _ready_metas(self) -> list[Any]:
        ac = self._completed
        with ac.thread_condition:
            if not ac.has_ready():
                ac.thread_condition.wait(timeout=LIVENESS_POLL_S)
        return list(ac.next_batch(block=False)) if ac.has_ready() else []

    def _result_of(self, flight: _InFlight) -> JobResult:
        job = flight.job
        if flight.meta.status != "finished":
            exc = flight.meta.exception()
            log.warning("job %s failed on %s: %s", job, flight.worker, exc)
            return JobResult(job, flight.worker, time.time(), time.time(), error=repr(exc))
        meta = flight.meta.result()
        state = None
        if job.kind is JobKind.TRAIN:
            state = flight.result
            self._latest[job.model_id] = _StateHolder(flight.result, flight.worker, job)
        return JobResult(
            job,
            meta["worker"],
            meta["started_at"],
            meta["ended_at"],
            state=state,
            metrics=meta["metrics"],
        )

    def _live_workers(self) -> list[str]:
        return sorted(self._client.scheduler_info(n_workers=-1)["workers"])

    def _assign_partitions(self, live: list[str]) -> None:
        """Give every partition without a live owner to the least loaded live worker."""
        if not live:
            raise RuntimeError("the Dask cluster has no live worker")
        load = {w: 0 for w in live}
        for w in self._owner.values():
            if w in load:
                load[w] += 1
        for p in self._partitions:
            if self._owner.get(p) not in load:
                target = min(live, key=lambda w: (load[w], live.index(w)))
                self._owner[p] = target
                load[target] += 1

    def _handle_lost_workers(self) -> list[JobResult]:
        self._last_poll = time.monotonic()
        live = self._live_workers()
        dead = {w for w in self._owner.values() if w not in live}
        if not dead:
            return []
        if self._cluster is not None and len(live) < len(self._partitions):
            # The nanny restarts a killed worker; give it a moment to come back.
            deadline = time.monotonic() + 10
            while len(live) < len(self._partitions) and time.monotonic() < deadline:
                time.sleep(0.2)
                live = self._live_workers()
        log.warning("lost Dask workers %s; reassigning their partitions", sorted(dead))
        self._assign_partitions(live)
        lost_states = {k for k, h in self._latest.items() if h.worker in dead}
        results: list[JobResult] = []
        now = time.time()
        for key, flight in list(self._inflight.items()):
            model_id = flight.job.model_id
            needs_lost = (
                model_id in lost_states and flight.input_state is self._latest[model_id].future
            )
            if flight.worker in dead or needs_lost:
                self._client.cancel([flight.meta, flight.result])
                del self._inflight[key]
                results.append(
                    JobResult(
                        flight.job,
                        flight.worker,
                        now,
                        now,
                        error=f"worker {flight.worker} lost",
                        state_lost=needs_lost,
                    )
                )
                lost_states.discard(flight.job.model_id)
        for model_id in lost_states:
            holder = self._latest.pop(model_id)
            self._client.cancel([holder.future])
            results.append(
                JobResult(holder.job, holder.worker, now, now, error="state lost", state_lost=True)
            )
        return results
