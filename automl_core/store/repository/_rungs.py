"""Reads and writes of the ``rungs`` table (successive-halving entries and results)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from psycopg2 import sql
from psycopg2.extras import execute_values

from automl_core.store.repository._common import _t, _tx


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
