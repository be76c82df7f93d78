"""Keyed, idempotent reads and writes of the ``automl`` tables.

Contract shared by every function here:
- the connection comes first; each call runs in one transaction of its own and commits
  it (any transaction the caller left open on the connection is committed with it);
  on error the transaction is rolled back and nothing is written;
- writes are keyed upserts, so a retried or re-run task never duplicates a row:
  "insert-if-absent" functions never change an existing row, "upsert" functions
  overwrite it with the new values;
- rows come back as small frozen dataclasses (or NamedTuples where a tuple is natural),
  ordered by their key.

Statuses are plain strings (a ``str`` Enum whose values are these strings also works):
experiments ``running``/``completed``/``failed``; trials ``pending``/``running``/
``completed``/``failed``/``stopped``. Epochs are 1-based; trial ids are non-negative and
``next_trial_id`` numbers them from 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, NamedTuple

from psycopg2 import sql
from psycopg2.extras import Json, execute_values

from automl_core.errors import UserInputError
from automl_core.store.migrations import SCHEMA

EXPERIMENT_STATUSES = ("running", "completed", "failed")
TRIAL_STATUSES = ("pending", "running", "completed", "failed", "stopped")


# --- rows -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    method: str
    dataset: str
    spec: dict[str, Any]
    seed: int
    status: str
    airflow_run_id: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class TrialRow:
    """A configuration to train. ``status``/``error`` are ignored when writing."""

    trial_id: int
    config: dict[str, Any]
    bracket: int | None = None
    batch: int | None = None
    status: str = "pending"
    error: str | None = None


@dataclass(frozen=True)
class EpochRow:
    trial_id: int
    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    valid_loss: float | None
    valid_accuracy: float | None
    seconds: float | None
    samples: int | None
    recorded_at: datetime


@dataclass(frozen=True)
class Checkpoint:
    """The latest saved state of a trial: inline ``state`` bytes and/or an artifact ``uri``."""

    epoch: int
    state: bytes | None
    uri: str | None


@dataclass(frozen=True)
class JobRow:
    """One sub-epoch of ``mop_jobs``; times are ``time.time()`` seconds."""

    trial_id: int
    epoch: int
    partition: int
    kind: str
    worker: str | None
    started_at: float | None
    ended_at: float | None
    attempt: int = 1


@dataclass(frozen=True)
class RungEntry:
    trial_id: int
    target_epochs: int


class RungResult(NamedTuple):
    trial_id: int
    metric: float | None
    promoted: bool | None
    reason: str | None


@dataclass(frozen=True)
class RungRow:
    trial_id: int
    target_epochs: int
    metric: float | None
    promoted: bool | None
    reason: str | None


class FinishedTrial(NamedTuple):
    trial_id: int
    config: dict[str, Any]
    best_valid_accuracy: float | None
    last_valid_accuracy: float | None


# --- helpers --------------------------------------------------------------------------


def _t(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


@contextmanager
def _tx(conn: Any) -> Iterator[Any]:
    """A cursor inside one transaction that commits on success and rolls back on error."""
    with conn, conn.cursor() as cur:
        yield cur


def _text(value: Any) -> str:
    """A status or kind as text: str Enums are stored by value."""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _checked(value: Any, allowed: tuple[str, ...], what: str) -> str:
    text = _text(value)
    if text not in allowed:
        raise ValueError(f"The value of {what} is {text!r}, but must be one of {allowed}.")
    return text


def _normalised_json(value: Any, what: str) -> Any:
    """``value`` as it will read back from jsonb (tuples become lists, keys strings)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UserInputError(
            f"{what} cannot be stored as JSON: {exc}. Use plain "
            f"numbers, strings, booleans, lists and mappings."
        ) from None


# --- experiments ----------------------------------------------------------------------

_EXPERIMENT_COLUMNS = sql.SQL(
    "id, name, method, dataset, spec, seed, status, airflow_run_id, created_at, finished_at"
)


def _experiment(row: Sequence[Any]) -> Experiment:
    exp_id, name, method, dataset, spec, seed, status, run_id, created, finished = row
    return Experiment(
        int(exp_id), name, method, dataset, spec, int(seed), status, run_id, created, finished
    )


def create_experiment(
    conn: Any,
    *,
    name: str,
    method: str,
    dataset: str,
    spec: dict[str, Any],
    seed: int,
    airflow_run_id: str | None = None,
) -> Experiment:
    """The experiment ``name``, created if absent (status ``running``).

    Re-running with the same name, method, dataset, spec and seed returns the existing
    experiment unchanged (its status and airflow_run_id are kept), so a retried task
    resumes rather than starts over.

    Raises:
        UserInputError: the name is empty, the spec is not JSON, or the name is taken by
            an experiment with a different method, dataset, spec or seed.
    """
    if not name or not name.strip():
        raise UserInputError("The experiment name is empty: pass a name with --name.")
    spec_json = _normalised_json(spec, "The experiment spec")
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (name, method, dataset, spec, seed, airflow_run_id) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING {}"
            ).format(_t("experiments"), _EXPERIMENT_COLUMNS),
            (name, method, dataset, Json(spec_json), int(seed), airflow_run_id),
        )
        row = cur.fetchone()
        if row is not None:
            return _experiment(row)
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE name = %s").format(
                _EXPERIMENT_COLUMNS, _t("experiments")
            ),
            (name,),
        )
        existing = _experiment(cur.fetchone())
    wanted = {"method": method, "dataset": dataset, "spec": spec_json, "seed": int(seed)}
    differ = [key for key, value in wanted.items() if getattr(existing, key) != value]
    if differ:
        raise UserInputError(
            f"The experiment name {name!r} is taken by experiment {existing.id} with a "
            f"different {', '.join(differ)}. Pick another --name, or repeat the original "
            f"settings to resume it."
        )
    return existing


def get_experiment(conn: Any, name: str) -> Experiment:
    """The experiment called ``name``.

    Raises:
        UserInputError: there is none; the message lists the existing names.
    """
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE name = %s").format(
                _EXPERIMENT_COLUMNS, _t("experiments")
            ),
            (name,),
        )
        row = cur.fetchone()
        if row is not None:
            return _experiment(row)
        cur.execute(sql.SQL("SELECT name FROM {} ORDER BY id").format(_t("experiments")))
        names = [r[0] for r in cur.fetchall()]
    known = ", ".join(repr(n) for n in names[:20]) if names else "none yet"
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    raise UserInputError(
        f"There is no experiment named {name!r} in this database (experiments: {known}{more}). "
        f"Check the name, or AUTOML_DB_URL if the experiment lives in another database."
    )


def list_experiments(conn: Any) -> list[Experiment]:
    """Every experiment, oldest first."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY id").format(_EXPERIMENT_COLUMNS, _t("experiments"))
        )
        return [_experiment(r) for r in cur.fetchall()]


def set_experiment_status(
    conn: Any, experiment_id: int, status: str, finished: bool = False
) -> None:
    """Set the status; ``finished_at`` becomes now() when ``finished``, else NULL.

    Raises:
        ValueError: the status is not one of ``EXPERIMENT_STATUSES``.
        LookupError: there is no experiment with this id.
    """
    text = _checked(status, EXPERIMENT_STATUSES, "status")
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, "
                "finished_at = CASE WHEN %s THEN now() ELSE NULL END WHERE id = %s"
            ).format(_t("experiments")),
            (text, finished, experiment_id),
        )
        if cur.rowcount == 0:
            raise LookupError(f"There is no experiment with id {experiment_id}.")


# --- trials ---------------------------------------------------------------------------


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
        return [TrialRow(*r) for r in cur.fetchall()]


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
    """
    text = _checked(status, TRIAL_STATUSES, "status")
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, error = %s "
                "WHERE experiment_id = %s AND trial_id = ANY(%s::integer[])"
            ).format(_t("trials")),
            (text, error, experiment_id, list(trial_ids)),
        )
        return int(cur.rowcount)


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


# --- epochs ---------------------------------------------------------------------------


def record_epoch(
    conn: Any,
    experiment_id: int,
    trial_id: int,
    epoch: int,
    *,
    train_loss: float | None,
    train_accuracy: float | None,
    valid_loss: float | None,
    valid_accuracy: float | None,
    seconds: float | None,
    samples: int | None,
) -> None:
    """Upsert the metrics of one (trial, epoch); a re-run of the epoch overwrites them.

    Raises:
        ValueError: ``epoch`` is below 1 (epochs are 1-based).
    """
    if epoch < 1:
        raise ValueError(f"The value of epoch is {epoch}, but must be 1 or more (1-based).")
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (experiment_id, trial_id, epoch, train_loss, train_accuracy, "
                "valid_loss, valid_accuracy, seconds, samples) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (experiment_id, trial_id, epoch) DO UPDATE SET "
                "train_loss = EXCLUDED.train_loss, train_accuracy = EXCLUDED.train_accuracy, "
                "valid_loss = EXCLUDED.valid_loss, valid_accuracy = EXCLUDED.valid_accuracy, "
                "seconds = EXCLUDED.seconds, samples = EXCLUDED.samples, recorded_at = now()"
            ).format(_t("trial_epochs")),
            (
                experiment_id,
                trial_id,
                epoch,
                train_loss,
                train_accuracy,
                valid_loss,
                valid_accuracy,
                seconds,
                samples,
            ),
        )


def epochs(conn: Any, experiment_id: int, trial_ids: Sequence[int] | None = None) -> list[EpochRow]:
    """The epoch rows of the experiment (of ``trial_ids`` only, if given)."""
    where = sql.SQL("experiment_id = %s")
    params: list[Any] = [experiment_id]
    if trial_ids is not None:
        where = sql.SQL("{} AND trial_id = ANY(%s::integer[])").format(where)
        params.append(list(trial_ids))
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT trial_id, epoch, train_loss, train_accuracy, valid_loss, valid_accuracy, "
                "seconds, samples, recorded_at FROM {} WHERE {} ORDER BY trial_id, epoch"
            ).format(_t("trial_epochs"), where),
            params,
        )
        return [EpochRow(*r) for r in cur.fetchall()]


def last_epoch(conn: Any, experiment_id: int, trial_id: int) -> int:
    """The highest recorded epoch of the trial; 0 when it has none."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT COALESCE(max(epoch), 0) FROM {} WHERE experiment_id = %s AND trial_id = %s"
            ).format(_t("trial_epochs")),
            (experiment_id, trial_id),
        )
        return int(cur.fetchone()[0])


# --- checkpoints ----------------------------------------------------------------------


def save_checkpoint(
    conn: Any,
    experiment_id: int,
    trial_id: int,
    epoch: int,
    state: bytes | None = None,
    uri: str | None = None,
) -> bool:
    """Keep this as the trial's checkpoint unless a newer epoch is already saved.

    Returns whether it was written: an older epoch never overwrites a newer one (a late,
    retried task cannot roll a model back); the same epoch overwrites.

    Raises:
        ValueError: neither ``state`` nor ``uri`` is given, or ``epoch`` is below 1.
    """
    if state is None and uri is None:
        raise ValueError("save_checkpoint needs the state bytes, an artifact uri, or both.")
    if epoch < 1:
        raise ValueError(f"The value of epoch is {epoch}, but must be 1 or more (1-based).")
    blob = None if state is None else bytes(state)
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {t} AS c (experiment_id, trial_id, epoch, state, uri) "
                "VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (experiment_id, trial_id) DO UPDATE SET epoch = EXCLUDED.epoch, "
                "state = EXCLUDED.state, uri = EXCLUDED.uri, updated_at = now() "
                "WHERE c.epoch <= EXCLUDED.epoch"
            ).format(t=_t("checkpoints")),
            (experiment_id, trial_id, epoch, blob, uri),
        )
        return bool(cur.rowcount)


def load_checkpoint(conn: Any, experiment_id: int, trial_id: int) -> Checkpoint | None:
    """The trial's latest checkpoint, or None when it has none."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT epoch, state, uri FROM {} WHERE experiment_id = %s AND trial_id = %s"
            ).format(_t("checkpoints")),
            (experiment_id, trial_id),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return Checkpoint(int(row[0]), None if row[1] is None else bytes(row[1]), row[2])


# --- hopper jobs ----------------------------------------------------------------------


def record_jobs(conn: Any, experiment_id: int, rows: Sequence[JobRow]) -> int:
    """Upsert sub-epoch rows in batches; a re-run of a job overwrites its row.

    Within one call the last row for a key wins. Returns the number of distinct rows.
    """
    latest: dict[tuple[int, int, int, str], JobRow] = {}
    for job in rows:
        latest[(job.trial_id, job.epoch, job.partition, _text(job.kind))] = job
    if not latest:
        return 0
    values = [
        (experiment_id, trial, epoch, part, kind, j.worker, j.started_at, j.ended_at, j.attempt)
        for (trial, epoch, part, kind), j in latest.items()
    ]
    with _tx(conn) as cur:
        execute_values(
            cur,
            sql.SQL(
                'INSERT INTO {} (experiment_id, trial_id, epoch, "partition", kind, worker, '
                "started_at, ended_at, attempt) VALUES %s "
                'ON CONFLICT (experiment_id, trial_id, epoch, "partition", kind) DO UPDATE SET '
                "worker = EXCLUDED.worker, started_at = EXCLUDED.started_at, "
                "ended_at = EXCLUDED.ended_at, attempt = EXCLUDED.attempt"
            ).format(_t("mop_jobs")),
            values,
            page_size=1000,
        )
    return len(values)


def jobs(conn: Any, experiment_id: int) -> list[JobRow]:
    """The experiment's sub-epoch rows, ordered by start time (then key)."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                'SELECT trial_id, epoch, "partition", kind, worker, started_at, ended_at, attempt '
                "FROM {} WHERE experiment_id = %s "
                'ORDER BY started_at NULLS LAST, trial_id, epoch, "partition", kind'
            ).format(_t("mop_jobs")),
            (experiment_id,),
        )
        return [JobRow(*r) for r in cur.fetchall()]


# --- rungs ----------------------------------------------------------------------------


def upsert_rung(
    conn: Any, experiment_id: int, bracket: int, rung: int, entries: Sequence[RungEntry]
) -> list[int]:
    """Enter the trials into the rung if absent; return the trial ids entered now, sorted.

    An existing entry (and any result on it) is never changed.
    """
    unique = {e.trial_id: e for e in entries}
    if not unique:
        return []
    values = [(experiment_id, bracket, rung, e.trial_id, e.target_epochs) for e in unique.values()]
    with _tx(conn) as cur:
        inserted = execute_values(
            cur,
            sql.SQL(
                "INSERT INTO {} (experiment_id, bracket, rung, trial_id, target_epochs) "
                "VALUES %s ON CONFLICT (experiment_id, bracket, rung, trial_id) DO NOTHING "
                "RETURNING trial_id"
            ).format(_t("rungs")),
            values,
            fetch=True,
        )
    return sorted(int(r[0]) for r in inserted)


def set_rung_results(
    conn: Any,
    experiment_id: int,
    bracket: int,
    rung: int,
    results: Sequence[tuple[int, float | None, bool | None, str | None]],
) -> None:
    """Record each trial's metric, promotion decision and reason in the rung (overwrites).

    Raises:
        ValueError: a trial is not in the rung; nothing is written.
    """
    latest = {int(r[0]): RungResult(*r) for r in results}
    if not latest:
        return
    # The key travels inside VALUES: execute_values fills a single placeholder.
    values = [(experiment_id, bracket, rung, *result) for result in latest.values()]
    with _tx(conn) as cur:
        updated = execute_values(
            cur,
            sql.SQL(
                "UPDATE {} AS r SET metric = v.metric, promoted = v.promoted, reason = v.reason "
                "FROM (VALUES %s) AS v (experiment_id, bracket, rung, trial_id, metric, "
                "promoted, reason) WHERE r.experiment_id = v.experiment_id "
                "AND r.bracket = v.bracket AND r.rung = v.rung AND r.trial_id = v.trial_id "
                "RETURNING r.trial_id"
            ).format(_t("rungs")),
            values,
            template="(%s::bigint, %s::integer, %s::integer, %s::integer, "
            "%s::double precision, %s::boolean, %s::text)",
            fetch=True,
        )
        missing = sorted(set(latest) - {int(r[0]) for r in updated})
        if missing:
            # Raising inside the transaction rolls back the rows that did match.
            raise ValueError(
                f"Trials {missing} are not in rung {rung} of bracket {bracket}; "
                f"enter them with upsert_rung first."
            )


def get_rung(conn: Any, experiment_id: int, bracket: int, rung: int) -> list[RungRow]:
    """The rung's entries with their results (None until set), by trial id."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT trial_id, target_epochs, metric, promoted, reason FROM {} "
                "WHERE experiment_id = %s AND bracket = %s AND rung = %s ORDER BY trial_id"
            ).format(_t("rungs")),
            (experiment_id, bracket, rung),
        )
        return [RungRow(*r) for r in cur.fetchall()]


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
