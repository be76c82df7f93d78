"""Entering a group's trials: what a method proposes, written once, read back after.

``enter_group`` asks the experiment's method for the trials a bracket or batch starts
with (``plan.group_trials``) and writes them with keyed upserts; a bracket's trials also
enter its rung 0. ``history_before`` is what a method that learns from results is told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from automl_core.experiment import plan
from automl_core.search.groups import PlanGroup
from automl_core.store import repository as repo

if TYPE_CHECKING:
    from automl_core.experiment.api import ExperimentContext


def enter_group(ctx: ExperimentContext, group: PlanGroup) -> list[int]:
    """Write the trials ``group`` starts with (and, for a bracket, its rung 0); returns
    their ids. Idempotent: the same request and history give the same trials."""
    trials = plan.group_trials(ctx.request, group, lambda first: history_before(ctx, first))
    exp_id = ctx.experiment.id
    bracket, batch = (group.index, None) if group.promotes else (None, group.index)
    rows = [repo.TrialRow(t, c, bracket=bracket, batch=batch) for t, c in trials]
    repo.upsert_trials(ctx.conn, exp_id, rows)
    if group.promotes:
        r0 = group.rungs[0].target_epoch
        entries = [repo.RungEntry(t, r0) for t, _ in trials]
        repo.upsert_rung(ctx.conn, exp_id, group.index, 0, entries)
    return [t for t, _ in trials]


def history_before(ctx: ExperimentContext, first: int) -> list[tuple[dict[str, Any], Any]]:
    """Every trial with an id below ``first``, with the score a method learns from.

    The score is the trial's best validation accuracy: the model the leaderboard ranks
    and export hands over is its best epoch. A failed trial, or one with no validation
    result, is told as a failure (None), so TPE learns from it and never proposes it
    again. A second round (``parent_experiment`` set) first tells the parent's trials
    that lie in its narrowed space (``narrowing.parent_history``), so its first batch
    comes from TPE once they are as many as the random start-up.
    """
    exp_id = ctx.experiment.id
    best = {f.trial_id: f.best_valid_accuracy for f in repo.finished_trials(ctx.conn, exp_id)}
    history = [
        (t.config, None if t.status == repo.TrialState.FAILED else best.get(t.trial_id))
        for t in repo.get_trials(ctx.conn, exp_id)
        if t.trial_id < first
    ]
    parent = ctx.experiment.parent_experiment
    if parent is None:
        return history
    from automl_core.experiment.narrowing import parent_history
    from automl_core.space import SearchSpace

    return parent_history(ctx.conn, parent, SearchSpace.from_dict(ctx.request.space)) + history
