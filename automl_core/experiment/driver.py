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
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from automl_core.experiment import api
from automl_core.experiment.engine import TrainingEngine
from automl_core.experiment.finalize import finalize
from automl_core.experiment.plan import PlanGroup, search_plan
from automl_core.experiment.request import SearchRequest
from automl_core.experiment.training import open_executor, progress_bar
from automl_core.store import repository as repo

log = logging.getLogger(__name__)

POLL_S = 0.25  # how long the engine waits for a job or a new request before looking again
HEARTBEAT_S = 5.0
IDLE_TIMEOUT_S = 600.0  # no job, no request and the plan not complete: something is wrong


class EngineStalledError(RuntimeError):
    """The engine had nothing to train for too long while the search was not complete."""


class SearchDriver:
    """Takes the next step of each group of the plan once the database says it is due."""

    def __init__(
        self, ctx: api.ExperimentContext, release: Callable[[list[int]], None] | None = None
    ) -> None:
        self._ctx = ctx
        self._plan = search_plan(ctx.request)
        self._release = release or (lambda ids: None)
        self._complete: set[str] = set()

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
            done = self._advance_bracket(group) if group.promotes else self._advance_batch(group)
            if done:
                self._complete.add(group.group_id)
                log.info("%s complete", group.group_id.replace("_", " "))
                todo += [g for g in self._plan.groups if g.after == group.index]

    def _ready(self, group: PlanGroup) -> bool:
        after = group.after
        return after is None or f"{group.kind}_{after}" in self._complete

    def _advance_bracket(self, group: PlanGroup) -> bool:
        """Submit or promote the bracket's current rung; True when the bracket is done."""
        ctx, s = self._ctx, group.index
        for step in group.rungs:
            members = repo.get_rung(ctx.conn, ctx.experiment.id, s, step.rung)
            if step.rung > 0 and not members:
                return True  # no survivors: the bracket ended early
            if members and all(m.promoted is not None for m in members):
                continue
            api.submit_rung_in(ctx, s, step.rung)
            if api.unfinished_trials(ctx, bracket=s, rung=step.rung):
                return False
            decision = api.promote_rung_in(ctx, s, step.rung)
            last = step.rung == group.rungs[-1].rung
            self._release([m.trial_id for m in members] if last else decision["stopped"])
        return True

    def _advance_batch(self, group: PlanGroup) -> bool:
        """Propose and submit the batch; True once all its trials are trained."""
        ctx, b = self._ctx, group.index
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
) -> dict[str, Any]:
    """Train the whole search ``name`` on one pool of workers; resumes after a crash.

    Returns a summary (epochs trained, jobs, engine starts). Raises EngineStalledError
    when nothing can train for ``idle_timeout_s`` seconds although the search is not
    complete, and TrainingError when a job keeps failing.
    """
    from automl_core.data.reader import dataset_info

    with api.open_experiment(name, db_url) as ctx:
        exp_id = ctx.experiment.id
        starts = repo.start_engine(ctx.conn, exp_id, host=socket.gethostname(), pid=os.getpid())
        requeued = repo.requeue_running(ctx.conn, exp_id)
        log.info(
            "engine of %s started (start %d%s)",
            name,
            starts,
            f"; {requeued} requests back in the queue" if requeued else "",
        )
        info = dataset_info(ctx.conn, ctx.experiment.dataset)
        bar = progress_bar(progress)
        with open_executor(
            ctx.url, info, seed=ctx.request.seed, workers=workers, cluster=cluster
        ) as executor:
            engine = TrainingEngine(
                ctx.conn,
                exp_id,
                executor,
                seed=ctx.request.seed,
                seeded_order=ctx.request.visit_order == "seeded",
                progress=bar,
            )
            driver = SearchDriver(ctx, release=engine.release)
            _loop(ctx, engine, driver, idle_timeout_s=idle_timeout_s, bar=bar)
        repo.stop_engine(ctx.conn, exp_id)
        summary = engine.summary
    return {
        "epochs_trained": summary.epochs_trained,
        "jobs": summary.jobs,
        "resets": summary.resets,
        "engine_starts": starts,
    }


def _loop(
    ctx: api.ExperimentContext,
    engine: TrainingEngine,
    driver: SearchDriver,
    *,
    idle_timeout_s: float,
    bar: Any,
) -> None:
    def go() -> None:
        driver.advance()
        last_beat = idle_since = last_claim = time.monotonic()
        claim_due = True
        while not driver.complete:
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
            if now - last_beat >= HEARTBEAT_S:
                repo.engine_heartbeat(ctx.conn, ctx.experiment.id)
                last_beat = now

    if bar is None:
        go()
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    # Per-epoch log lines print above the bar instead of through it.
    with bar, logging_redirect_tqdm():
        go()


def run_search(request: SearchRequest, *, progress: bool = True, db_url: str | None = None) -> str:
    """Run the search end to end (resuming one of the same name) and finalise it."""
    name = api.create_experiment(request, db_url=db_url)["name"]
    run_engine(
        name,
        workers=request.workers,
        cluster=request.cluster,
        db_url=db_url,
        progress=progress,
    )
    finalize(name, db_url=db_url)
    return name
