"""Reads and writes of the training engine's queue (``training_requests``) and lease (``engines``).

A request asks the engine of an experiment to train one trial up to ``target_epoch``.
Its state moves only along ``REQUEST_TRANSITIONS``; every write below names the states it
may start from in its WHERE clause, so a transition that is not allowed changes no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg2 import sql
from psycopg2.extras import execute_values

from automl_core.store.repository._common import _t, _tx


class RequestState(StrEnum):
    QUEUED = "queued"  # asked for; no engine has taken it yet
    RUNNING = "running"  # an engine trains it
    DONE = "done"  # the trial reached the target epoch
    FAILED = "failed"  # the trial cannot train (its error says why)


# From -> the states it may move to. An engine that restarts puts RUNNING back to QUEUED.
REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.QUEUED: frozenset({RequestState.RUNNING, RequestState.DONE, RequestState.FAILED}),
    RequestState.RUNNING: frozenset({RequestState.QUEUED, RequestState.DONE, RequestState.FAILED}),
    RequestState.DONE: frozenset(),
    RequestState.FAILED: frozenset(),
}
UNFINISHED_STATES = frozenset({RequestState.QUEUED, RequestState.RUNNING})
# psycopg2 adapts a tuple to an SQL list: ``state IN %s``.
_UNFINISHED = tuple(sorted(s.value for s in UNFINISHED_STATES))


@dataclass(frozen=True)
class TrainingRequest:
    """Train ``trial_id`` to ``target_epoch``: for rung ``rung`` of ``bracket``, or ``batch``."""

    trial_id: int
    target_epoch: int
    bracket: int | None = None
    rung: int | None = None
    batch: int | None = None
    state: RequestState = RequestState.QUEUED
    error: str | None = None


@dataclass(frozen=True)
class EngineLease:
    """Who runs an experiment's engine, and how many seconds ago it last said so."""

    host: str
    pid: int
    starts: int
    heartbeat_age_s: float
    stopped: bool


_COLUMNS = sql.SQL("trial_id, target_epoch, bracket, rung, batch, state, error")


def _request(row: Sequence[Any]) -> TrainingRequest:
    trial_id, target_epoch, bracket, rung, batch, state, error = row
    return TrainingRequest(trial_id, target_epoch, bracket, rung, batch, RequestState(state), error)


def submit_requests(
    conn: Any, experiment_id: int, requests: Sequence[TrainingRequest]
) -> list[TrainingRequest]:
    """Queue the requests that are absent; return the ones queued now.

    An existing request (whatever its state) is never changed, so a retried or cleared
    task that submits again adds nothing.
    """
    unique = {(r.trial_id, r.target_epoch): r for r in requests}
    if not unique:
        return []
    values = [
        (experiment_id, r.trial_id, r.target_epoch, r.bracket, r.rung, r.batch)
        for r in unique.values()
    ]
    with _tx(conn) as cur:
        rows = execute_values(
            cur,
            sql.SQL(
                "INSERT INTO {} (experiment_id, trial_id, target_epoch, bracket, rung, batch) "
                "VALUES %s ON CONFLICT (experiment_id, trial_id, target_epoch) DO NOTHING "
                "RETURNING {}"
            ).format(_t("training_requests"), _COLUMNS),
            values,
            fetch=True,
        )
    return sorted((_request(r) for r in rows), key=lambda r: (r.trial_id, r.target_epoch))


def claim_requests(conn: Any, experiment_id: int) -> list[TrainingRequest]:
    """Move every queued request to running and return them (the engine takes them)."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET state = 'running', updated_at = now() "
                "WHERE experiment_id = %s AND state = 'queued' RETURNING {}"
            ).format(_t("training_requests"), _COLUMNS),
            (experiment_id,),
        )
        rows = cur.fetchall()
    return sorted((_request(r) for r in rows), key=lambda r: (r.trial_id, r.target_epoch))


def finish_requests(
    conn: Any, experiment_id: int, trial_id: int, epoch: int
) -> list[TrainingRequest]:
    """Mark the trial's unfinished requests with a target up to ``epoch`` done; return them."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET state = 'done', updated_at = now() "
                "WHERE experiment_id = %s AND trial_id = %s AND target_epoch <= %s "
                "AND state IN %s RETURNING {}"
            ).format(_t("training_requests"), _COLUMNS),
            (experiment_id, trial_id, epoch, _UNFINISHED),
        )
        rows = cur.fetchall()
    return [_request(r) for r in rows]


def fail_requests(
    conn: Any, experiment_id: int, trial_ids: Sequence[int], error: str
) -> list[TrainingRequest]:
    """Mark every unfinished request of the trials failed with ``error``; return them."""
    if not trial_ids:
        return []
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET state = 'failed', error = %s, updated_at = now() "
                "WHERE experiment_id = %s AND trial_id IN %s AND state IN %s RETURNING {}"
            ).format(_t("training_requests"), _COLUMNS),
            (error, experiment_id, tuple(trial_ids), _UNFINISHED),
        )
        rows = cur.fetchall()
    return [_request(r) for r in rows]


def requeue_running(conn: Any, experiment_id: int) -> int:
    """Put requests an engine was training back in the queue (the engine restarted)."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET state = 'queued', updated_at = now() "
                "WHERE experiment_id = %s AND state = 'running'"
            ).format(_t("training_requests")),
            (experiment_id,),
        )
        return int(cur.rowcount)


def get_requests(
    conn: Any,
    experiment_id: int,
    *,
    bracket: int | None = None,
    rung: int | None = None,
    batch: int | None = None,
) -> list[TrainingRequest]:
    """The experiment's requests, filtered by each argument that is not None."""
    where = [sql.SQL("experiment_id = %s")]
    params: list[Any] = [experiment_id]
    for column, value in (("bracket", bracket), ("rung", rung), ("batch", batch)):
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY trial_id, target_epoch").format(
                _COLUMNS, _t("training_requests"), sql.SQL(" AND ").join(where)
            ),
            params,
        )
        return [_request(r) for r in cur.fetchall()]


# --- the engine's lease ------------------------------------------------------------------


def start_engine(conn: Any, experiment_id: int, *, host: str, pid: int) -> int:
    """Record that an engine started for the experiment; returns how many have started."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} AS e (experiment_id, host, pid) VALUES (%s, %s, %s) "
                "ON CONFLICT (experiment_id) DO UPDATE SET host = EXCLUDED.host, "
                "pid = EXCLUDED.pid, starts = e.starts + 1, started_at = now(), "
                "heartbeat_at = now(), stopped_at = NULL RETURNING starts"
            ).format(t=_t("engines")),
            (experiment_id, host, pid),
        )
        return int(cur.fetchone()[0])


def engine_heartbeat(conn: Any, experiment_id: int) -> None:
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL("UPDATE {} SET heartbeat_at = now() WHERE experiment_id = %s").format(
                _t("engines")
            ),
            (experiment_id,),
        )


def stop_engine(conn: Any, experiment_id: int) -> None:
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET stopped_at = now(), heartbeat_at = now() WHERE experiment_id = %s"
            ).format(_t("engines")),
            (experiment_id,),
        )


def get_engine(conn: Any, experiment_id: int) -> EngineLease | None:
    """The experiment's engine lease, or None when no engine has started."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT host, pid, starts, extract(epoch FROM now() - heartbeat_at), "
                "stopped_at IS NOT NULL FROM {} WHERE experiment_id = %s"
            ).format(_t("engines")),
            (experiment_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return EngineLease(row[0], int(row[1]), int(row[2]), float(row[3]), bool(row[4]))
