"""Reads and writes of the training engine's queue (``training_requests``) and lease (``engines``).

A request asks the engine of an experiment to train one trial up to ``target_epoch``.
Its state moves only along ``REQUEST_TRANSITIONS``; every write below names the states it
may start from in its WHERE clause, so a transition that is not allowed changes no row.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg2 import sql
from psycopg2.extras import execute_values

from automl_core.errors import UserInputError
from automl_core.store.repository._common import _t, _tx
from automl_core.store.repository._experiments import Experiment, ExperimentState, list_experiments
from automl_core.store.repository._trials import TrialState


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
    started_age_s: float = 0.0


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
        return _requeue_running(cur, experiment_id)


def _requeue_running(cur: Any, experiment_id: int) -> int:
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


class EngineBusyError(UserInputError):
    """Another engine that still runs holds the experiment's lease (``lease``)."""

    def __init__(self, message: str, lease: EngineLease) -> None:
        super().__init__(message)
        self.lease = lease


def start_engine(conn: Any, experiment_id: int, *, host: str, pid: int) -> int:
    """Take the experiment's engine lease for process ``pid`` on ``host``; returns how
    many engines have started.

    Raises:
        EngineBusyError: another engine holds the lease and still runs (``engine_alive``):
            two engines would requeue each other's jobs and train the same trials.
    """
    with _tx(conn) as cur:
        # Two engines starting at once decide one after the other: the experiment's row is
        # locked (the lease's own row does not exist before the first start).
        cur.execute(
            sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE").format(_t("experiments")),
            (experiment_id,),
        )
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE experiment_id = %s").format(
                _LEASE_COLUMNS, _t("engines")
            ),
            (experiment_id,),
        )
        row = cur.fetchone()
        held = _lease(row) if row is not None else None
        if (
            held
            and not held.stopped
            and (held.host, held.pid) != (host, pid)
            and engine_alive(held)
        ):
            raise EngineBusyError(
                f"Another engine (pid {held.pid} on {held.host}, its heartbeat "
                f"{held.heartbeat_age_s:.0f} s ago) is training this experiment: wait for "
                "it to end, or stop it, then run again.",
                held,
            )
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


def interrupt_engine(conn: Any, experiment_id: int) -> int:
    """The engine stopped before the search ended (a signal); returns the epochs recorded.

    In one transaction: its running requests go back to the queue and its running trials
    back to pending (the rerun takes them again, from their checkpoints), a running
    experiment becomes ``interrupted`` and the lease is stopped.
    """
    with _tx(conn) as cur:
        _requeue_running(cur, experiment_id)
        # Both moves are in TRIAL_TRANSITIONS and EXPERIMENT_TRANSITIONS.
        cur.execute(
            sql.SQL("UPDATE {} SET status = %s WHERE experiment_id = %s AND status = %s").format(
                _t("trials")
            ),
            (TrialState.PENDING.value, experiment_id, TrialState.RUNNING.value),
        )
        cur.execute(
            sql.SQL("UPDATE {} SET status = %s WHERE id = %s AND status = %s").format(
                _t("experiments")
            ),
            (ExperimentState.INTERRUPTED.value, experiment_id, ExperimentState.RUNNING.value),
        )
        cur.execute(
            sql.SQL(
                "UPDATE {} SET stopped_at = now(), heartbeat_at = now() WHERE experiment_id = %s"
            ).format(_t("engines")),
            (experiment_id,),
        )
        cur.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE experiment_id = %s").format(_t("trial_epochs")),
            (experiment_id,),
        )
        return int(cur.fetchone()[0])


def get_engine(conn: Any, experiment_id: int) -> EngineLease | None:
    """The experiment's engine lease, or None when no engine has started."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE experiment_id = %s").format(
                _LEASE_COLUMNS, _t("engines")
            ),
            (experiment_id,),
        )
        row = cur.fetchone()
    return _lease(row) if row is not None else None


_LEASE_COLUMNS = sql.SQL(
    "host, pid, starts, extract(epoch FROM now() - heartbeat_at), "
    "stopped_at IS NOT NULL, extract(epoch FROM now() - started_at)"
)


def _lease(row: Sequence[Any]) -> EngineLease:
    return EngineLease(row[0], int(row[1]), int(row[2]), float(row[3]), bool(row[4]), float(row[5]))


# --- engines that are gone ---------------------------------------------------------------

# An engine on another host is gone when it has not beaten for this long (it beats every
# 5 s; a minute covers a busy database or a long garbage collection).
ENGINE_SILENT_S = 60.0
# The clocks of this process and of the database server are compared through ages only;
# this covers the rounding and the time between the lease's write and its process start.
_PID_START_SLACK_S = 5.0


def engine_alive(lease: EngineLease) -> bool:
    """Whether the engine that holds ``lease`` still runs.

    On this host its process decides: the pid must be alive and not younger than the
    lease (a reused pid is another process). On another host, whose processes cannot be
    seen from here, a heartbeat within ``ENGINE_SILENT_S`` does.
    """
    if lease.host != socket.gethostname():
        return lease.heartbeat_age_s < ENGINE_SILENT_S
    import psutil

    try:
        process = psutil.Process(lease.pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped
            return False
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return created <= time.time() - lease.started_age_s + _PID_START_SLACK_S


def stale_experiments(conn: Any) -> list[tuple[Experiment, EngineLease]]:
    """Experiments marked ``running`` whose engine started and is gone (see engine_alive).

    Staleness is computed, never stored: an engine on another host may only be slow, and
    a status written by a reader would race with it. A lease that was stopped cleanly
    (the engine ended; finalising comes next) or that no engine has taken yet is not stale.
    """
    out = []
    for experiment in list_experiments(conn):
        lease = stale_lease(conn, experiment)
        if lease is not None:
            out.append((experiment, lease))
    return out


def stale_lease(conn: Any, experiment: Experiment) -> EngineLease | None:
    """The lease of ``experiment`` when it is stale (see stale_experiments); else None."""
    if experiment.status != ExperimentState.RUNNING:
        return None
    lease = get_engine(conn, experiment.id)
    if lease is None or lease.stopped or engine_alive(lease):
        return None
    return lease


def resume_hint(experiment: Experiment) -> str:
    """How to resume ``experiment``: rerun its command, or its Airflow run's engine task."""
    if experiment.airflow_run_id:
        return (
            f"clear the engine task of Airflow run {experiment.airflow_run_id!r} "
            f"(or rerun `automl run ... --name {experiment.name}` with its settings)"
        )
    return f"rerun `automl run ... --name {experiment.name}` with its original settings"
