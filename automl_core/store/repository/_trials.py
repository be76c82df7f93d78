"""Reads and writes of the ``trials`` table, and the finished trials searchers learn from.

A trial's status moves only along ``TRIAL_TRANSITIONS``; ``set_trial_status`` raises
``TransitionError`` (writing nothing) for any other move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from psycopg2 import sql
from psycopg2.extras import Json, execute_values

from automl_core.store.repository._common import _check_transitions, _checked, _sources, _t, _tx


class TrialState(StrEnum):
    PENDING = "pending"  # created; not training (again) yet
    RUNNING = "running"  # the engine trains it, or it waits between rungs
    COMPLETED = "completed"  # trained to its last target
    FAILED = "failed"  # cannot train: rejected or its training raised (``error`` says why)
    STOPPED = "stopped"  # not promoted by its rung (Hyperband)


_ALL_TRIAL_STATES = frozenset(TrialState)
# From -> the states it may move to; staying put is always allowed (a retried write).
# RUNNING goes back to PENDING when the engine is interrupted. A finished trial (completed,
# stopped, failed) trains again only when a request for a later epoch claims it (RUNNING);
# before training, a trial may finish at once (its checkpoint already reaches the target).
TRIAL_TRANSITIONS: dict[TrialState, frozenset[TrialState]] = {
    TrialState.PENDING: _ALL_TRIAL_STATES,
    TrialState.RUNNING: _ALL_TRIAL_STATES,
    TrialState.COMPLETED: frozenset({TrialState.COMPLETED, TrialState.RUNNING, TrialState.FAILED}),
    TrialState.STOPPED: frozenset({TrialState.STOPPED, TrialState.RUNNING, TrialState.FAILED}),
    TrialState.FAILED: frozenset({TrialState.FAILED, TrialState.RUNNING}),
}
TRIAL_STATUSES = tuple(s.value for s in TrialState)


@dataclass(frozen=True)
class TrialRow:
    """A configuration to train. ``status``/``error`` are ignored when writing."""

    trial_id: int
    config: dict[str, Any]
    bracket: int | None = None
    batch: int | None = None
    status: TrialState = TrialState.PENDING
    error: str | None = None


class FinishedTrial(NamedTuple):
    trial_id: int
    config: dict[str, Any]
    best_valid_accuracy: float | None
    last_valid_accuracy: float | None


def upsert_trials(conn: Any, experiment_id: int, trials: Sequence[TrialRow]) -> list[int]:
    """Insert the trials that are absent; return the ids inserted now, sorted.

    An existing trial is never changed (its config, bracket, batch and status stay).

    Raises:
        ValueError: one trial id appears twice with different contents.
    """
    unique: dict[int, TrialRow] = {}
    for trial in trials:
        seen = unique.setdefault(trial.trial_id, trial)
        if seen != trial:
            raise ValueError(f"Trial {trial.trial_id} is given twice with different contents.")
    if not unique:
        return []
    rows = [
        (experiment_id, t.trial_id, Json(t.config), t.bracket, t.batch) for t in unique.values()
    ]
    with _tx(conn) as cur:
        inserted = execute_values(
            cur,
            sql.SQL(
                "INSERT INTO {} (experiment_id, trial_id, config, bracket, batch) VALUES %s "
                "ON CONFLICT (experiment_id, trial_id) DO NOTHING RETURNING trial_id"
            ).format(_t("trials")),
            rows,
            fetch=True,
        )
    return sorted(int(r[0]) for r in inserted)


def get_trials(
    conn: Any,
    experiment_id: int,
    *,
    bracket: int | None = None,
    batch: int | None = None,
    trial_ids: Sequence[int] | None = None,
) -> list[TrialRow]:
    """The experiment's trials, filtered by each argument that is not None, by trial id."""
    where = [sql.SQL("experiment_id = %s")]
    params: list[Any] = [experiment_id]
    if bracket is not None:
        where.append(sql.SQL("bracket = %s"))
        params.append(bracket)
    if batch is not None:
        where.append(sql.SQL("batch = %s"))
        params.append(batch)
    if trial_ids is not None:
        where.append(sql.SQL("trial_id = ANY(%s::integer[])"))
        params.append(list(trial_ids))
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT trial_id, config, bracket, batch, status, error FROM {} WHERE {} "
                "ORDER BY trial_id"
            ).format(_t("trials"), sql.SQL(" AND ").join(where)),
            params,
        )
        return [TrialRow(t, c, b, n, TrialState(st), e) for t, c, b, n, st, e in cur.fetchall()]


def set_trial_status(
    conn: Any,
    experiment_id: int,
    trial_ids: Sequence[int],
    status: str,
    error: str | None = None,
) -> int:
    """Set the status (and error text, cleared when None) of the trials; return the count.

    Ids that are not trials of the experiment are ignored (the count tells).

    Raises:
        ValueError: the status is not one of ``TRIAL_STATUSES``.
        TransitionError: a trial's status may not move to ``status`` (``TRIAL_TRANSITIONS``);
            then no trial changes.
    """
    target = TrialState(_checked(status, TRIAL_STATUSES, "status"))
    ids = sorted(set(trial_ids))
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, error = %s "
                "WHERE experiment_id = %s AND trial_id = ANY(%s::integer[]) AND status IN %s"
            ).format(_t("trials")),
            (target.value, error, experiment_id, ids, _sources(target, TRIAL_TRANSITIONS)),
        )
        updated = int(cur.rowcount)
        if updated < len(ids):  # absent, or in a state that may not move there
            cur.execute(
                sql.SQL(
                    "SELECT trial_id, status FROM {} WHERE experiment_id = %s "
                    "AND trial_id = ANY(%s::integer[]) AND status NOT IN %s ORDER BY trial_id"
                ).format(_t("trials")),
                (experiment_id, ids, _sources(target, TRIAL_TRANSITIONS)),
            )
            _check_transitions(cur.fetchall(), target, TRIAL_TRANSITIONS, "trial")
        return updated


def next_trial_id(conn: Any, experiment_id: int) -> int:
    """One more than the largest trial id of the experiment; 0 when it has none."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT COALESCE(max(trial_id) + 1, 0) FROM {} WHERE experiment_id = %s"
            ).format(_t("trials")),
            (experiment_id,),
        )
        return int(cur.fetchone()[0])


# --- results --------------------------------------------------------------------------


def finished_trials(conn: Any, experiment_id: int) -> list[FinishedTrial]:
    """Trials with at least one recorded epoch, with their best and latest validation
    accuracy (None when never evaluated), by trial id. This is what searchers learn from."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT t.trial_id, t.config, e.best, e.last FROM {trials} AS t JOIN ("
                "  SELECT trial_id, max(valid_accuracy) AS best,"
                "    (array_agg(valid_accuracy ORDER BY epoch DESC))[1] AS last"
                "  FROM {epochs} WHERE experiment_id = %s GROUP BY trial_id"
                ") AS e ON e.trial_id = t.trial_id "
                "WHERE t.experiment_id = %s ORDER BY t.trial_id"
            ).format(trials=_t("trials"), epochs=_t("trial_epochs")),
            (experiment_id, experiment_id),
        )
        return [FinishedTrial(*r) for r in cur.fetchall()]
