"""The real executor: sub-epochs on Dask workers, one partition pinned to each worker.

Implementation notes
- Partitions never move while their worker lives: every job of partition p is submitted
  with ``workers=[owner(p)], allow_other_workers=False``; the worker reads p once and
  caches it (``dask_worker.load_partition``).
- The model state is what moves: a job's output (the state and the visits of its epoch)
  stays on the worker that made it, and the next job of that model takes the future as
  an argument, so Dask copies it worker to worker. One job is one Dask task; the driver
  learns that it ended from the future's status alone and pulls nothing until the
  model's epoch ends. Then it pulls the output at once (state bytes for the checkpoint,
  the epoch's visits for the job log and metrics), so that a worker dying before the
  checkpoint is written shows up as a failed job here and not as a lost state in
  ``fetch_epoch``.
- Worker loss. Dask alone never recovers from it here: a task pinned to a dead worker
  stays in ``no-worker`` forever, a gather of its data waits forever, and a future whose
  data died makes Dask recompute the whole chain of states on a worker that is gone.
  So every call into Dask has a deadline, and the executor polls the scheduler for live
  workers (every ``LIVENESS_POLL_S``). A partition whose worker died goes to a live
  worker at once (read again there, lazily), and to a fresh worker when one joins. Jobs in
  flight on the dead worker are cancelled and come back failed; models whose latest state
  lived there come back with ``state_lost`` (on their in-flight job if they have one), so
  the runner resets them to their last checkpoint. Lost futures are cancelled, so nothing
  stays pinned to a dead address, and a job later submitted from one fails at once with
  ``state_lost``. A job whose epoch output cannot be had before its deadline from a worker
  that still looks alive is cancelled and reported failed: the runner submits it again.
- One thread per worker: a cluster with a worker of more is refused at start, and one
  that joins later is never used (see ``worker_loss``): two jobs at once in one worker
  break MOP's one model per worker and a seed's repeatability.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

from automl_core.executors.dask_worker import DataRef, job_output, run_job, warm_up
from automl_core.executors.local_cluster import local_cluster
from automl_core.executors.scheduler_probe import check_scheduler
from automl_core.executors.spawn_safe import spawn_safe_main
from automl_core.executors.worker_loss import (
    _UNUSABLE,
    WORKERS_TIMEOUT_S,
    WorkerLossHandling,
    _InFlight,
    _StateHolder,
    _WorkerGone,
)
from automl_core.mop.executor import JobResult, StateLostError, Visit
from automl_core.mop.types import Job, JobKind

log = logging.getLogger(__name__)

LIVENESS_POLL_S = 0.5  # how often wait() asks the scheduler which workers live
RESULT_SLICE_S = 0.5  # a gather waits this long before it checks its worker still lives
STATE_DEADLINE_S = 300.0  # a model state (up to GBs) from a live worker
CONNECT_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 30.0


@dataclass
class _EpochVisits:
    """The (partition, kind) visits a model has made in ``epoch`` (to spot its end)."""

    epoch: int
    done: set[tuple[int, JobKind]] = field(default_factory=set)


class DaskExecutor(WorkerLossHandling):
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
        replicate_validation: bool = False,
    ) -> None:
        """``replicate_validation``: every worker holds every validation partition, and
        an epoch's last training visit evaluates the whole validation set there, instead
        of a pass of evaluation jobs (half the jobs; meant for small validation sets)."""
        from distributed import Client, as_completed

        # Holds the local cluster and the guard that keeps a host program's __main__ (the
        # `airflow` command in a task) from being re-imported in its workers (forked or
        # spawned, a worker imports its parent's __main__), now or when one restarts.
        self._main_guard = contextlib.ExitStack()
        self._partitions = list(partitions)
        self._data = (
            dataclasses.replace(data, validation_partitions=tuple(self._partitions))
            if replicate_validation
            else data
        )
        self._seed = seed
        # The pass that ends an epoch.
        self._last_kind = JobKind.TRAIN if replicate_validation else JobKind.EVAL
        self._client: Any = None
        try:
            if address:
                check_scheduler(address)  # Client would wait for ever on a silent peer
                self._client = Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT_S)
            else:
                # One single-threaded worker process per partition; torch uses one thread each.
                self._main_guard.enter_context(spawn_safe_main())
                cluster = self._main_guard.enter_context(
                    local_cluster(n_workers or len(self._partitions))
                )
                self._client = Client(cluster, set_as_default=False)
            self._client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            self._live: list[str] = []
            self._heard_from_scheduler = time.monotonic()
            self._owner: dict[int, str] = {}
            self._inflight: dict[Any, _InFlight] = {}  # result future key -> job
            self._latest: dict[int, _StateHolder] = {}  # model id -> its latest state
            # model id -> key of its newest job; an older one still running was dropped (its
            # model was reset) and its output must not pass for the model's state.
            self._newest: dict[int, Any] = {}
            self._epochs: dict[int, _EpochVisits] = {}  # model id -> its epoch in progress
            # model id -> (key of its output future, the output), pulled when its epoch ended
            self._fetched: dict[int, tuple[Any, tuple[bytes, list[Visit]]]] = {}
            self._warming: dict[str, tuple[int, Any]] = {}  # worker -> (partition, warm-up)
            self._pending_results: list[JobResult] = []
            self._last_poll = 0.0
            self._assign_partitions(self._first_workers(address or self._client.scheduler.address))
            self._completed = as_completed([], loop=self._client.loop, with_results=False)
            # Workers get ready while the driver prepares the first jobs (held: not dropped).
            self._warm_ups = [
                self._client.submit(
                    warm_up, self._data, p, workers=[w], allow_other_workers=False, pure=False
                )
                for p, w in self._owner.items()
            ]
        except BaseException:
            # Nothing of a half-made executor may outlive it (cluster, settings, guard).
            if self._client is not None:
                self._client.close(timeout=CLOSE_TIMEOUT_S)
            self._main_guard.close()
            raise

    # --- Executor protocol ---------------------------------------------------------------

    @property
    def partitions(self) -> Sequence[int]:
        return self._partitions

    @property
    def evaluation_pass(self) -> bool:
        return self._last_kind is JobKind.EVAL

    @property
    def queues_jobs(self) -> bool:
        """A partition's second job waits on its worker (which fetches its input state
        meanwhile): every worker used has one thread."""
        return True

    @property
    def client(self) -> Any:
        return self._client

    def owner(self, partition: int) -> str:
        """The worker address that holds ``partition`` now."""
        return self._owner[partition]

    def state_worker(self, model_id: int) -> str | None:
        """The worker holding the model's latest state (None: none, or bytes on the driver)."""
        holder = self._latest.get(model_id)
        return holder.worker if holder is not None else None

    def forget(self, model_id: int) -> None:
        """Let go of the model's latest state (no job will read it again), so Dask frees it."""
        self._latest.pop(model_id, None)
        self._newest.pop(model_id, None)
        self._fetched.pop(model_id, None)
        self._epochs.pop(model_id, None)

    def submit(self, job: Job, config: Mapping[str, Any], state: Any) -> None:
        """Start ``job``; a state future that already died fails the job with ``state_lost``."""
        ahead = sum(f.job.partition == job.partition for f in self._inflight.values())
        if ahead >= 2:
            raise RuntimeError(f"partition {job.partition} already runs a job and queues one")
        if not ahead:  # a partition moves only while none of its jobs is in flight
            self._move_if_warm(job.partition)
        input_state = state if not isinstance(state, bytes | type(None)) else None
        holder = self._latest.get(job.model_id)
        if holder is not None and input_state is not holder.future:
            # A reset model restarts from checkpoint bytes: its old state is obsolete.
            self._latest.pop(job.model_id, None)
        if input_state is None:
            self._epochs.pop(job.model_id, None)  # a fresh start or a reset: a new epoch
        elif input_state.status in _UNUSABLE:
            # Submitting it would make Dask recompute the state on a dead worker.
            self._cancel([input_state])
            self._newest.pop(job.model_id, None)
            now = time.time()
            worker = self._owner[job.partition]
            self._pending_results.append(
                JobResult(
                    job, worker, now, now, error="input state lost", state_lost=True, lost=True
                )
            )
            return
        self._start(job, config, state, input_state)

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Every job that ended since the last call; blocks until one has.

        With ``timeout``, returns (maybe []) after at most about that many seconds. Jobs
        lost with a worker come back failed within about ``LIVENESS_POLL_S`` of the
        scheduler noticing the loss.
        """
        if not self._inflight and not self._pending_results:
            raise RuntimeError("wait() called with no job in flight")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            results = self._pending_results
            self._pending_results = []
            results.extend(self._collect_ready(block=not results))
            if time.monotonic() - self._last_poll >= LIVENESS_POLL_S:
                results.extend(self._poll_workers())
            if results or (deadline is not None and time.monotonic() >= deadline):
                return results

    def fetch_epoch(self, state: Any) -> tuple[bytes, list[Visit]]:
        """The state as bytes and its epoch's visits; StateLostError when it died."""
        if isinstance(state, bytes):
            return state, []
        for model_id, (key, early) in self._fetched.items():
            if key == state.key:
                del self._fetched[model_id]
                return early
        holder = next((h for h in self._latest.values() if h.future is state), None)
        try:
            # Gather the stored result: the worker serves it from memory even while it
            # trains another model, whereas a task would queue behind that training.
            value = self._await(state, holder.worker if holder else None, STATE_DEADLINE_S)
        except (_WorkerGone, TimeoutError, CancelledError) as exc:
            raise StateLostError(f"state {state.key} could not be fetched: {exc!r}") from exc
        return job_output(value)

    def now(self) -> float:
        return time.time()

    def close(self) -> None:
        self._client.close(timeout=CLOSE_TIMEOUT_S)
        self._main_guard.close()  # the local cluster, if any, then __main__ restored

    # --- submitting and collecting ---------------------------------------------------------

    def _model_seed(self, model_id: int) -> int:
        return (self._seed * 1_000_003 + model_id) % (2**31)

    def _start(self, job: Job, config: Mapping[str, Any], state: Any, input_state: Any) -> None:
        worker = self._owner[job.partition]
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
            # A typed TrainingConfig (not a Mapping) travels as is; a dict is copied.
            dict(config) if isinstance(config, Mapping) else config,
            state,
            self._data,
            self._model_seed(job.model_id),
            not self.evaluation_pass and self._ends_epoch(job),
            key=key,
            **pinned,
        )
        self._inflight[result.key] = _InFlight(job, result, worker, input_state, time.time())
        self._newest[job.model_id] = result.key
        self._completed.add(result)

    def _collect_ready(self, *, block: bool) -> list[JobResult]:
        """Results of the jobs that ended (``block``: wait up to a poll interval for one);
        a job whose worker is gone stays in flight, for the liveness poll (run at once)
        to report."""
        results = []
        for future in self._ready(block):
            flight = self._inflight.pop(future.key, None)
            if flight is None:
                continue  # cancelled and reported already
            try:
                results.append(self._result_of(flight))
            except _WorkerGone:
                # The poll (now) reports it; watching the future again keeps the job from
                # going unnoticed should its worker come back under the same address.
                self._inflight[future.key] = flight
                self._completed.add(future)
                self._last_poll = 0.0
        return results

    def _ready(self, block: bool) -> list[Any]:
        ac = self._completed
        with ac.thread_condition:
            if block and not ac.has_ready():
                ac.thread_condition.wait(timeout=LIVENESS_POLL_S)
        return list(ac.next_batch(block=False)) if ac.has_ready() else []

    def _result_of(self, flight: _InFlight) -> JobResult:
        """How a job that ended did; raises _WorkerGone when its worker left."""
        job, future = flight.job, flight.result
        status = future.status
        if status == "error":
            exc = future.exception(timeout=RESULT_SLICE_S)
            log.warning("job %s failed on %s: %s", job, flight.worker, exc)
            return self._failed(flight, repr(exc), lost=False)
        if status == "cancelled":
            return self._failed(flight, "cancelled", state_lost=self._input_lost(flight))
        if self._newest.get(job.model_id) != future.key:
            # A dropped job: it only frees its partition. Its output is not the model's
            # state; kept as the latest, a later loss of its worker would be reported
            # against the model's newer job.
            return JobResult(job, flight.worker, flight.submitted_at, time.time(), state=future)
        if self._ends_epoch(job):
            try:
                # The epoch's checkpoint will want this output: pull it while this job can
                # still fail, so a worker dying now is a failed job, not a lost checkpoint.
                value = self._await(future, flight.worker, STATE_DEADLINE_S)
            except TimeoutError:
                log.warning("job %s on %s: no result within its deadline", job, flight.worker)
                self._cancel([future])
                return self._failed(flight, "timed out waiting for its result")
            except _WorkerGone:
                raise
            except Exception as exc:  # cancelled under us, or the job raised after all
                log.warning("job %s on %s did not finish: %r", job, flight.worker, exc)
                return self._failed(flight, repr(exc), state_lost=self._input_lost(flight))
            self._fetched[job.model_id] = (future.key, job_output(value))
        self._latest[job.model_id] = _StateHolder(future, flight.worker, job)
        self._note_visit(job)
        return JobResult(job, flight.worker, flight.submitted_at, time.time(), state=future)

    def _input_lost(self, flight: _InFlight) -> bool:
        return flight.input_state is not None and flight.input_state.status in _UNUSABLE

    def _await(self, future: Any, worker: str | None, deadline_s: float) -> Any:
        """``future``'s value within ``deadline_s`` (TimeoutError after it).

        One gather runs on the client's event loop while this thread checks every
        ``RESULT_SLICE_S`` that ``worker`` (where the data lives; None: unknown) is still
        in the cluster, and raises _WorkerGone as soon as it is not: Dask would wait for
        ever. (One gather, not one per slice: every cancelled gather leaves a task behind
        whose error the event loop logs, traceback and all.)
        """
        loop: Any = self._client.loop  # tornado's IOLoop over an asyncio loop
        gather = self._client.gather(future, asynchronous=True)
        pending = asyncio.run_coroutine_threadsafe(gather, loop.asyncio_loop)
        deadline = time.monotonic() + deadline_s
        try:
            while True:
                try:
                    return pending.result(timeout=RESULT_SLICE_S)
                except TimeoutError:
                    if pending.done():
                        raise  # the gather itself raised it
                    if worker is not None and worker not in self._live_workers():
                        raise _WorkerGone(worker) from None
                    if time.monotonic() >= deadline:
                        raise
        finally:
            pending.cancel()

    def _ends_epoch(self, job: Job) -> bool:
        """True when ``job`` is the model's last visit of its epoch."""
        if job.kind is not self._last_kind:
            return False
        seen = self._epochs.get(job.model_id)
        done = seen.done if seen is not None and seen.epoch == job.epoch else set()
        return all((p, job.kind) in done for p in self._partitions if p != job.partition)

    def _note_visit(self, job: Job) -> None:
        seen = self._epochs.get(job.model_id)
        if seen is None or seen.epoch != job.epoch:
            seen = self._epochs[job.model_id] = _EpochVisits(job.epoch)
        seen.done.add((job.partition, job.kind))
        early = self._fetched.get(job.model_id)
        if early is not None and early[0] != self._latest[job.model_id].future.key:
            del self._fetched[job.model_id]  # the output of an older job: never asked for now
