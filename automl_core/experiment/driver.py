"""A whole search in one process (`automl run`): every trial shares one pool of workers.

Hyperband's brackets run concurrently: all rung-0 trials start together and, as soon as
the last trial of a rung finishes, the rung is promoted and its survivors join the
running hopper with the state they already have on the workers. Workers therefore stay
busy while brackets thin out. Grid and random train all their trials at once; Hyperopt
trains batch after batch, each proposed from every earlier result.
"""

from __future__ import annotations

import logging
from typing import Any

from automl_core.experiment import api, plan
from automl_core.experiment.finalize import finalize
from automl_core.experiment.request import SearchRequest, batch_count
from automl_core.experiment.training import open_executor, resume_targets, run_targets
from automl_core.mop.runner import TrainingTarget
from automl_core.store import repository as repo

log = logging.getLogger(__name__)


def run_search(request: SearchRequest, *, progress: bool = True, db_url: str | None = None) -> str:
    """Run the search end to end (resuming one of the same name) and finalise it."""
    created = api.create_experiment(request, db_url=db_url)
    name = created["name"]
    from automl_core.data.reader import dataset_info

    with api.open_experiment(name, db_url) as ctx:
        info = dataset_info(ctx.conn, ctx.experiment.dataset)
        with open_executor(
            ctx.url, info, seed=request.seed, workers=request.workers, cluster=request.cluster
        ) as executor:
            if request.method == "hyperband":
                _HyperbandRun(ctx, executor, info, progress).run()
            else:
                _run_batches(ctx, executor, info, progress)
    finalize(name, db_url=db_url)
    return name


def _run_batches(ctx: Any, executor: Any, info: Any, progress: bool) -> None:
    request, exp_id = ctx.request, ctx.experiment.id
    # Hyperopt batches depend on earlier results; grid and random batches do not, so
    # they all train together.
    groups = (
        [[b] for b in range(request.batches)]
        if request.method == "hyperopt"
        else [list(range(batch_count(request)))]
    )
    for group in groups:
        items = []
        for batch in group:
            api.propose_batch(ctx.experiment.name, batch, db_url=ctx.url)
            trials = repo.get_trials(ctx.conn, exp_id, batch=batch)
            items += [(t.trial_id, t.config, request.epochs) for t in trials]
        targets = resume_targets(ctx.conn, exp_id, items, info)
        repo.set_trial_status(ctx.conn, exp_id, [t.trial_id for t in targets], "running")
        run_targets(ctx.conn, exp_id, executor, targets, seed=request.seed, progress=progress)
        repo.set_trial_status(ctx.conn, exp_id, [t.trial_id for t in targets], "completed")


class _HyperbandRun:
    """Drives all brackets through their rungs on one shared hopper."""

    def __init__(self, ctx: Any, executor: Any, info: Any, progress: bool) -> None:
        self._ctx = ctx
        self._info = info
        self._executor = executor
        self._progress = progress
        self._name = ctx.experiment.name
        self._schedule = plan.schedule_of(ctx.request)
        self._rung_of: dict[int, tuple[int, int]] = {}
        self._waiting: dict[tuple[int, int], set[int]] = {}
        self._held: set[int] = set()  # trials whose state the hopper holds

    def run(self) -> None:
        targets: list[TrainingTarget] = []
        for bracket in self._schedule.brackets:
            api.start_bracket(self._name, bracket.s, db_url=self._ctx.url)
            targets += self._advance(bracket.s, self._current_rung(bracket.s))
        run_targets(
            self._ctx.conn,
            self._ctx.experiment.id,
            self._executor,
            targets,
            seed=self._ctx.request.seed,
            progress=self._progress,
            on_model_done=self._on_model_done,
        )

    def _current_rung(self, bracket: int) -> int:
        """The first rung of the bracket whose promotion has not been decided."""
        rung = 0
        while True:
            rows = repo.get_rung(self._ctx.conn, self._ctx.experiment.id, bracket, rung)
            decided = rows and all(r.promoted is not None for r in rows)
            has_next = bool(
                repo.get_rung(self._ctx.conn, self._ctx.experiment.id, bracket, rung + 1)
            )
            if decided and has_next:
                rung += 1
                continue
            return rung

    def _advance(self, bracket: int, rung: int) -> list[TrainingTarget]:
        """Targets for the first rung from ``rung`` on that still needs training."""
        rungs = plan.bracket_of(self._schedule, bracket).rungs
        while rung < len(rungs):
            items = api.rung_items(self._ctx, bracket, rung)
            targets = resume_targets(self._ctx.conn, self._ctx.experiment.id, items, self._info)
            if targets:
                self._waiting[(bracket, rung)] = {t.trial_id for t in targets}
                for t in targets:
                    self._rung_of[t.trial_id] = (bracket, rung)
                repo.set_trial_status(
                    self._ctx.conn,
                    self._ctx.experiment.id,
                    [t.trial_id for t in targets],
                    "running",
                )
                # A trial the hopper already holds continues from the state on its worker.
                return [
                    TrainingTarget(t.trial_id, t.config, t.start_epoch, t.target_epoch, None)
                    if t.trial_id in self._held
                    else t
                    for t in targets
                ]
            promoted = api.promote_rung(self._name, bracket, rung, db_url=self._ctx.url)
            if not promoted["promoted"]:
                return []
            rung += 1
        return []

    def _on_model_done(self, trial_id: int, epoch: int) -> list[TrainingTarget]:
        self._held.add(trial_id)
        key = self._rung_of.pop(trial_id)
        waiting = self._waiting[key]
        waiting.discard(trial_id)
        if waiting:
            return []
        del self._waiting[key]
        bracket, rung = key
        promoted = api.promote_rung(self._name, bracket, rung, db_url=self._ctx.url)
        if not promoted["promoted"]:
            return []
        return self._advance(bracket, rung + 1)
