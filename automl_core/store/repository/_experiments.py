"""Reads and writes of the ``experiments`` table.

An experiment's status moves only along ``EXPERIMENT_TRANSITIONS``; a write that would
take another move raises ``TransitionError`` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg2 import sql
from psycopg2.extras import Json

from automl_core.errors import UserInputError
from automl_core.store.migrations import SCHEMA
from automl_core.store.repository._common import (
    _check_transitions,
    _checked,
    _normalised_json,
    _sources,
    _t,
    _tx,
    read_cursor,
)


class ExperimentState(StrEnum):
    RUNNING = "running"  # created, or its engine trains
    COMPLETED = "completed"  # finalised with at least one trained epoch
    FAILED = "failed"  # finalised with nothing trained
    INTERRUPTED = "interrupted"  # its engine stopped on a signal (migration 5)


# From -> the states it may move to; staying put is always allowed (a retried write).
# Finalising looks at the epochs, not the status, so a rerun of it may turn a finished
# experiment either way; a finished or interrupted experiment is reopened as RUNNING.
# Only a running experiment can be interrupted.
EXPERIMENT_TRANSITIONS: dict[ExperimentState, frozenset[ExperimentState]] = {
    ExperimentState.RUNNING: frozenset(ExperimentState),
    ExperimentState.INTERRUPTED: frozenset(ExperimentState),
    ExperimentState.COMPLETED: frozenset(
        {ExperimentState.COMPLETED, ExperimentState.FAILED, ExperimentState.RUNNING}
    ),
    ExperimentState.FAILED: frozenset(
        {ExperimentState.FAILED, ExperimentState.COMPLETED, ExperimentState.RUNNING}
    ),
}
EXPERIMENT_STATUSES = tuple(s.value for s in ExperimentState)


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    method: str
    dataset: str
    spec: dict[str, Any]
    seed: int
    status: ExperimentState
    airflow_run_id: str | None
    created_at: datetime
    finished_at: datetime | None
    # The experiment this one's space was narrowed from (migration 6); None for most.
    parent_experiment: str | None = None


_EXPERIMENT_COLUMNS = sql.SQL(
    "id, name, method, dataset, spec, seed, status, airflow_run_id, created_at, finished_at, "
    "parent_experiment"
)


def _experiment(row: Sequence[Any]) -> Experiment:
    exp_id, name, method, dataset, spec, seed, status, run_id, created, finished, parent = row
    return Experiment(
        int(exp_id),
        name,
        method,
        dataset,
        spec,
        int(seed),
        ExperimentState(status),
        run_id,
        created,
        finished,
        parent,
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
    parent_experiment: str | None = None,
    data: dict[str, Any] | None = None,
) -> Experiment:
    """The experiment ``name``, created if absent (status ``running``).

    ``data``: the data set's row as it is now (``DatasetInfo.record()``), kept with a new
    experiment (``experiment_data``); an existing one keeps what it has.

    Re-running with the same name, method, dataset, spec, seed and parent experiment
    returns the existing experiment unchanged (its status and airflow_run_id are kept),
    so a retried task resumes rather than starts over. ``parent_experiment`` names the
    experiment this one's space was narrowed from (lineage; not checked here).

    Raises:
        UserInputError: the name is empty, the spec is not JSON, or the name is taken by
            an experiment with a different method, dataset, spec, seed or parent.
    """
    _require_name(name)
    spec_json = _normalised_json(spec, "The experiment spec")
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (name, method, dataset, spec, seed, airflow_run_id, "
                "parent_experiment, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING {}"
            ).format(_t("experiments"), _EXPERIMENT_COLUMNS),
            (
                name,
                method,
                dataset,
                Json(spec_json),
                int(seed),
                airflow_run_id,
                parent_experiment,
                None if data is None else Json(data),
            ),
        )
        row = cur.fetchone()
        if row is not None:
            return _experiment(row)
    existing = _find_experiment(conn, name)
    assert existing is not None  # the insert conflicted on it; experiments are never deleted
    _refuse_another_definition(
        existing,
        name=name,
        method=method,
        dataset=dataset,
        spec_json=spec_json,
        seed=seed,
        parent_experiment=parent_experiment,
    )
    return existing


def check_experiment_name(
    conn: Any,
    *,
    name: str,
    method: str,
    dataset: str,
    spec: dict[str, Any],
    seed: int,
    parent_experiment: str | None = None,
) -> None:
    """Refuse what :func:`create_experiment` would refuse, writing nothing.

    Raises:
        UserInputError: as :func:`create_experiment` does.
    """
    _require_name(name)
    existing = _find_experiment(conn, name)
    if existing is not None:
        _refuse_another_definition(
            existing,
            name=name,
            method=method,
            dataset=dataset,
            spec_json=_normalised_json(spec, "The experiment spec"),
            seed=seed,
            parent_experiment=parent_experiment,
        )


def _require_name(name: str) -> None:
    if not name or not name.strip():
        raise UserInputError("The experiment name is empty: pass a name with --name.")


def _find_experiment(conn: Any, name: str) -> Experiment | None:
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE name = %s").format(
                _EXPERIMENT_COLUMNS, _t("experiments")
            ),
            (name,),
        )
        row = cur.fetchone()
    return None if row is None else _experiment(row)


def _refuse_another_definition(
    existing: Experiment,
    *,
    name: str,
    method: str,
    dataset: str,
    spec_json: Any,
    seed: int,
    parent_experiment: str | None,
) -> None:
    wanted = {
        "method": method,
        "dataset": dataset,
        "spec": spec_json,
        "seed": int(seed),
        "parent_experiment": parent_experiment,
    }
    differ = [key for key, value in wanted.items() if getattr(existing, key) != value]
    if differ:
        raise UserInputError(
            f"The experiment name {name!r} is taken by experiment {existing.id} with a "
            f"different {', '.join(differ)}. Pick another name (--name, or experiment_name "
            f"in a DAG run), or repeat the original settings to resume it."
        )


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


def experiment_record(conn: Any, experiment_name: str) -> Experiment:
    """The experiment called ``experiment_name`` (a reader's entry point).

    Raises UserInputError when the name is empty, names no experiment (the message lists
    those that exist), the database has no automl schema, or ``conn`` is no connection.
    """
    if not isinstance(experiment_name, str) or not experiment_name.strip():
        raise UserInputError("The experiment name is empty: give the name of an experiment.")
    if not hasattr(conn, "cursor"):  # a URL or an engine, from a notebook
        raise UserInputError(
            f"Pass a psycopg2 connection, not {type(conn).__name__}: "
            "automl_core.store.connection.connect(url) opens one."
        )
    with read_cursor(conn) as cur:
        cur.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.experiments",))
        row = cur.fetchone()
    if row is None or row[0] is None:
        raise UserInputError(
            f"There is no experiment named {experiment_name!r} in this database: it holds no "
            "experiments yet (no automl schema). Check the database you connected to."
        )
    return get_experiment(conn, experiment_name)


def list_experiments(conn: Any) -> list[Experiment]:
    """Every experiment, oldest first."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY id").format(_EXPERIMENT_COLUMNS, _t("experiments"))
        )
        return [_experiment(r) for r in cur.fetchall()]


def experiments_on_dataset(conn: Any, dataset: str) -> list[tuple[str, ExperimentState, bool]]:
    """(name, status, keeps its data) of every experiment trained on ``dataset``, oldest
    first; read inside the caller's transaction, if one is open (``prepare`` holds its
    lock). "Keeps its data": it holds its own copy of the data set's row (schema 9), so
    its export does not read the data set's current row."""
    with read_cursor(conn) as cur:
        cur.execute(
            sql.SQL(
                "SELECT name, status, data IS NOT NULL FROM {} WHERE dataset = %s ORDER BY id"
            ).format(_t("experiments")),
            (dataset,),
        )
        return [(name, ExperimentState(status), bool(kept)) for name, status, kept in cur]


def experiment_data(conn: Any, experiment_id: int) -> dict[str, Any] | None:
    """The data set's row as experiment ``experiment_id`` was created (``DatasetInfo``'s
    fields), or None for one created before schema 9."""
    with read_cursor(conn) as cur:
        cur.execute(
            sql.SQL("SELECT data FROM {} WHERE id = %s").format(_t("experiments")),
            (experiment_id,),
        )
        row = cur.fetchone()
    return None if row is None else row[0]


def set_experiment_status(
    conn: Any, experiment_id: int, status: str, finished: bool = False
) -> None:
    """Set the status; ``finished_at`` becomes now() when ``finished``, else NULL.

    Raises:
        ValueError: the status is not one of ``EXPERIMENT_STATUSES``.
        LookupError: there is no experiment with this id.
        TransitionError: the status may not move to ``status`` (``EXPERIMENT_TRANSITIONS``).
    """
    target = ExperimentState(_checked(status, EXPERIMENT_STATUSES, "status"))
    sources = _sources(target, EXPERIMENT_TRANSITIONS)
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, "
                "finished_at = CASE WHEN %s THEN now() ELSE NULL END "
                "WHERE id = %s AND status IN %s"
            ).format(_t("experiments")),
            (target.value, finished, experiment_id, sources),
        )
        if cur.rowcount == 0:
            cur.execute(
                sql.SQL("SELECT status FROM {} WHERE id = %s").format(_t("experiments")),
                (experiment_id,),
            )
            row = cur.fetchone()
            if row is None:
                raise LookupError(f"There is no experiment with id {experiment_id}.")
            _check_transitions(
                [(experiment_id, row[0])], target, EXPERIMENT_TRANSITIONS, "experiment"
            )


def resume_experiment(conn: Any, experiment_id: int) -> bool:
    """An ``interrupted`` experiment is ``running`` again (its engine restarts); True if so."""
    with _tx(conn) as cur:
        cur.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, finished_at = NULL WHERE id = %s AND status = %s"
            ).format(_t("experiments")),
            (ExperimentState.RUNNING.value, experiment_id, ExperimentState.INTERRUPTED.value),
        )
        return bool(cur.rowcount)
