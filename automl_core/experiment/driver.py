"""One engine per search: the driver walks the search plan while the engine trains.

``run_engine`` is the whole of training for a search, in whichever process runs it: the
`automl run` command, or the one long-running engine task of an Airflow DAG run. It owns
the workers (one Dask cluster, or the one given) and a ``TrainingEngine``; the
``SearchDriver`` walks the plan (``plan.search_plan``) from the database rows and takes
each next step with the same functions the Airflow tasks call (``api``): it starts
brackets, submits rungs and batches, promotes a rung as soon as its last request is
done, and proposes the next Hyperopt batch. Every step is idempotent, so an Airflow task
that takes the same step (a training task submitting its rung, a promotion task deciding
it) changes nothing the driver did, and gets the same answer.

Hyperband's brackets therefore run concurrently on one pool of workers: while one
bracket waits for its promotion (milliseconds here), the others keep every worker busy.

Faults. The engine talks to the database through one ``RetryingConnection``: a server
that goes away is waited for (``AUTOML_DB_RETRY_S``, 60 s) and every call is repeated
on the new connection, which is safe because every write is keyed or guarded by state;
after a reconnect the engine re-reads the queue and the plan, since an answer may have
been lost with the old connection. Past the window it raises ``DatabaseLostError``,
naming the experiment. A ``StopRequest`` (a signal, or Airflow's ``on_kill``) or a
KeyboardInterrupt ends the loop between steps: the jobs in flight are abandoned with
the workers, the queue and the trials are put back for the rerun, the experiment is
marked ``interrupted`` and ``EngineInterrupted`` says how many epochs are saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

from automl_core.errors import UserInputError
from automl_core.experiment import api
from automl_core.experiment.engine import TrainingEngine
from automl_core.experiment.finalizing import finalize
from automl_core.experiment.lease import ENGINE_HEARTBEAT_S, take_lease
from automl_core.experiment.plan import PlanGroup
from automl_core.experiment.request import SearchRequest
from automl_core.experiment.stopping import (
    EngineInterrupted,
    StopRequest,
    new_processes_ignore_sigint,
)
from automl_core.experiment.worker_pool import (
    check_cluster,
    open_executor,
    progress_bar,
    start_local_workers_early,
)
from automl_core.store import repository as repo
from automl_core.store.connection import DatabaseLostError, RetryingConnection

log = logging.getLogger(__name__)

POLL_S = 0.25  # how long the engine waits for a job or a new request before looking again
IDLE_TIMEOUT_S = 600.0  # no job, no request and the plan not complete: something is wrong


class EngineStalledError(RuntimeError):
    """The engine had nothing to train for too long while the search was not complete."""


class SearchDriver:
    """Takes the next step of each group of the plan once the database says it is due."""

    def __init__(
        self,
        ctx: api.ExperimentContext,
        release: Callable[[list[int]], None] | None = None,
        db: RetryingConnection | None = None,
    ) -> None:
        """``db``: the connection to retry the steps on (default: ``ctx.conn``, no retry)."""
        self._ctx = ctx
        self._db = db or RetryingConnection(None, ctx.conn)
        self._plan = ctx.plan
        self._release = release or (lambda ids: None)
        self._complete: set[str] = set()
        self._released: set[tuple[int, int]] = set()  # (bracket, rung) decided and released

    @property
    def complete(self) -> bool:
        return len(self._complete) == len(self._plan.groups)

    def advance(self, groups: Iterable[tuple[str, int]] | None = None) -> None:
        """Take every step that is due in ``groups`` (kind, index), or in all of them.

        A group that completes lets the groups that wait for it start.
        """
        todo = (
            list(self._plan.groups)
            if groups is None
            else [self._plan.group(kind, index) for kind, index in set(groups)]
        )
        while todo:
            group = todo.pop(0)
            if group.group_id in self._complete or not self._ready(group):
                continue
            # Every step is idempotent: after a lost connection the group is advanced again.
            done = self._db.run(functools.partial(self._advance_group, group=group))
            if done:
                self._complete.add(group.group_id)
                log.info("%s complete", group.group_id.replace("_", " "))
                todo += self._plan.followers(group)

    def _ready(self, group: PlanGroup) -> bool:
        after = group.after
        return after is None or f"{group.kind}_{after}" in self._complete

    def _advance_group(self, conn: Any, *, group: PlanGroup) -> bool:
        ctx = dataclasses.replace(self._ctx, conn=conn)
        return (
            self._advance_bracket(ctx, group) if group.promotes else self._advance_batch(ctx, group)
        )

    def _advance_bracket(self, ctx: api.ExperimentContext, group: PlanGroup) -> bool:
        """Submit or promote the bracket's current rung; True when the bracket is done."""
        s = group.index
        for step in group.rungs:
            members = repo.get_rung(ctx.conn, ctx.experiment.id, s, step.rung)
            if step.rung > 0 and not members:
                return True  # no survivors: the bracket ended early
            if members and all(m.promoted is not None for m in members):
                stopped = [m.trial_id for m in members if not m.promoted]
            else:
                api.submit_rung_in(ctx, s, step.rung)
                if api.unfinished_trials(ctx, bracket=s, rung=step.rung):
                    return False
                stopped = api.promote_rung_in(ctx, s, step.rung)["stopped"]
            # Decided here, by an earlier try of this step or by an Airflow promotion task:
            # whoever decided, the trials that no later rung trains are released, once.
            if (s, step.rung) not in self._released:
                self._released.add((s, step.rung))
                last = step.rung == group.rungs[-1].rung
                self._release([m.trial_id for m in members] if last else stopped)
        return True

    def _advance_batch(self, ctx: api.ExperimentContext, group: PlanGroup) -> bool:
        """Propose and submit the batch; True once all its trials are trained."""
        b = group.index
        api.propose_batch_in(ctx, b)
        ids = api.submit_batch_in(ctx, b)
        if api.unfinished_trials(ctx, batch=b):
            return False
        api.complete_batch_in(ctx, b)
        self._release(ids)
        return True


def groups_of(requests: Iterable[repo.TrainingRequest]) -> set[tuple[str, int]]:
    """The plan groups (kind, index) the requests belong to."""
    out: set[tuple[str, int]] = set()
    for r in requests:
        if r.bracket is not None:
            out.add(("bracket", r.bracket))
        elif r.batch is not None:
            out.add(("batch", r.batch))
    return out


def run_engine(
    name: str,
    *,
    workers: int | None = None,
    cluster: str | None = None,
    db_url: str | None = None,
    progress: bool = False,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    stop: StopRequest | None = None,
    deep_brackets_first: bool = False,
) -> dict[str, Any]:
    """Train the whole search ``name`` on one pool of workers; resumes after a crash.

    ``deep_brackets_first``: for a DAG run: the deepest bracket's rungs train first
    (``TrainingEngine``'s ``priority_plan``).

    Returns a summary (epochs trained, jobs, engine starts). Raises EngineStalledError
    when nothing can train for ``idle_timeout_s`` seconds although the search is not
    complete; TrainingError when a job keeps failing; EngineInterrupted when ``stop`` is
    requested (or a KeyboardInterrupt arrives) before the search is complete; and
    DatabaseLostError when the database stays away longer than ``AUTOML_DB_RETRY_S``.
    """
    stop = stop or StopRequest()
    with api.open_experiment(name, db_url) as ctx:
        start_local_workers_early(cluster)  # importing while the engine reads its rows
        db = RetryingConnection(ctx.url, ctx.conn)
        exp_id = ctx.experiment.id
        try:
            try:
                summary, starts = _train(
                    ctx, db, workers, cluster, progress, idle_timeout_s, stop, deep_brackets_first
                )
            except KeyboardInterrupt:
                stop.request(signal.SIGINT)
                summary = None
            if summary is None:
                # The workers are closed (the jobs in flight abandoned); put the rest back.
                epochs = db.run(lambda c: repo.interrupt_engine(c, exp_id))
                raise EngineInterrupted(name, stop.signum or signal.SIGINT, epochs) from None
            db.run(lambda c: repo.stop_engine(c, exp_id))
        except DatabaseLostError as exc:
            exc.experiment = name
            raise
        finally:
            db.close()
    return {
        "epochs_trained": summary.epochs_trained,
        "jobs": summary.jobs,
        "resets": summary.resets,
        "engine_starts": starts,
    }


def _train(
    ctx: api.ExperimentContext,
    db: RetryingConnection,
    workers: int | None,
    cluster: str | None,
    progress: bool,
    idle_timeout_s: float,
    stop: StopRequest,
    deep_brackets_first: bool,
) -> tuple[Any, int]:
    """Start the engine and train until the plan is complete: (runner summary, starts).

    The summary is None when ``stop`` ended the training first.
    """
    from automl_core.data.reader import dataset_info
    from automl_core.training.engine import validate_config

    exp_id, name = ctx.experiment.id, ctx.experiment.name
    starts = take_lease(db, name, exp_id, stop)
    db.run(lambda c: repo.resume_experiment(c, exp_id))
    requeued = db.run(lambda c: repo.requeue_running(c, exp_id))
    log.info(
        "engine of %s started (start %d%s)",
        name,
        starts,
        f"; {requeued} requests back in the queue" if requeued else "",
    )
    for other, lease in db.run(repo.stale_experiments):
        log.warning(
            "experiment %r is stale: it is marked running but its engine (pid %d on %s) "
            "is gone; to resume it, %s",
            other.name,
            lease.pid,
            lease.host,
            repo.resume_hint(other),
        )
    info = db.run(lambda c: dataset_info(c, ctx.experiment.dataset))
    if stop.requested:  # before the workers start: nothing to abandon
        return None, starts
    trained = db.run(lambda c: len(repo.epochs(c, exp_id))) if progress else 0
    bar = progress_bar(progress, planned_epochs=ctx.plan.planned_epochs - trained)
    with contextlib.ExitStack() as stack:
        try:
            with new_processes_ignore_sigint():
                executor = stack.enter_context(
                    open_executor(
                        ctx.url, info, seed=ctx.request.seed, workers=workers, cluster=cluster
                    )
                )
        except UserInputError:  # e.g. the cluster is unreachable: nothing trained
            db.run(lambda c: repo.interrupt_engine(c, exp_id))  # resumable, not "running"
            raise
        # The objects that exist now (torch, Dask's scheduler and client, their modules)
        # live as long as the run: frozen, the garbage collector stops walking them at
        # every full collection (the driver used ~10% less CPU in the benchmark).
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)  # after the run they may go like any others
        engine = TrainingEngine(
            db,
            exp_id,
            executor,
            seed=ctx.request.seed,
            seeded_order=ctx.request.visit_order == "seeded",
            progress=bar,
            check_config=functools.partial(
                validate_config, input_shape=info.feature_shape, num_classes=info.num_classes
            ),
            priority_plan=ctx.plan if deep_brackets_first else None,
        )
        stack.push(functools.partial(_close_engine, engine))
        driver = SearchDriver(ctx, release=engine.release, db=db)
        complete = _loop(ctx, db, engine, driver, idle_timeout_s=idle_timeout_s, bar=bar, stop=stop)
    return (engine.summary if complete else None), starts


def _close_engine(engine: TrainingEngine, exc_type: Any, exc: Any, tb: Any) -> bool:
    """Write what the engine still holds for the database. When the training already
    failed, a failure to write is logged, so it does not hide why the training stopped."""
    if exc_type is None:
        engine.close()
        return False
    try:
        engine.close()
    except Exception as error:
        log.warning("results still queued for the database were not written: %r", error)
    return False


def _loop(
    ctx: api.ExperimentContext,
    db: RetryingConnection,
    engine: TrainingEngine,
    driver: SearchDriver,
    *,
    idle_timeout_s: float,
    bar: Any,
    stop: StopRequest,
) -> bool:
    """Claim, step and advance until the plan is complete (True) or ``stop`` (False)."""
    exp_id = ctx.experiment.id

    def go() -> bool:
        driver.advance()
        last_beat = idle_since = last_claim = time.monotonic()
        claim_due = True
        reconnects = db.reconnects
        while not driver.complete:
            if stop.requested:
                return False
            if db.reconnects != reconnects:
                # An answer may have been lost with the old connection: a claim (its
                # requests are running but not here) or a finish (its group never
                # advanced). Requeue and advance everything: both are idempotent.
                reconnects = db.reconnects
                db.run(lambda c: repo.requeue_running(c, exp_id))
                driver.advance()
                claim_due = True
            # The queue is read when the driver may have added to it (it advanced), and
            # every POLL_S for requests from other processes: not after every job.
            started = engine.claim() if claim_due else 0
            if claim_due:
                last_claim = time.monotonic()
            finished = engine.step(POLL_S)
            if finished:
                driver.advance(groups_of(finished))
            now = time.monotonic()
            claim_due = bool(finished) or now - last_claim >= POLL_S
            if started or finished or engine.busy:
                idle_since = now
            elif now - idle_since > idle_timeout_s:
                raise EngineStalledError(
                    f"The engine of experiment {ctx.experiment.name!r} had nothing to train "
                    f"for {idle_timeout_s:.0f} s, but the search is not complete. Check the "
                    "training_requests table for failed requests, then rerun."
                )
            if now - last_beat >= ENGINE_HEARTBEAT_S:
                db.run(lambda c: repo.engine_heartbeat(c, exp_id))
                last_beat = now
        return True

    if bar is None:
        return go()
    from tqdm.contrib.logging import logging_redirect_tqdm

    # Per-epoch log lines print above the bar instead of through it.
    with bar, logging_redirect_tqdm():
        return go()


def run_search(
    request: SearchRequest,
    *,
    progress: bool = True,
    db_url: str | None = None,
    stop: StopRequest | None = None,
) -> str:
    """Run the search end to end (resuming one of the same name) and finalise it.

    Raises EngineInterrupted (``stop`` was requested) and DatabaseLostError as
    ``run_engine`` does; the experiment is then left for a rerun to resume.
    """
    check_cluster(request.cluster)  # before the experiment exists: a bad address leaves none
    start_local_workers_early(request.cluster)  # they import torch while this creates
    name = api.create_experiment(request, db_url=db_url)["name"]
    run_engine(
        name,
        workers=request.workers,
        cluster=request.cluster,
        db_url=db_url,
        progress=progress,
        stop=stop,
    )
    finalize(name, db_url=db_url)
    return name
