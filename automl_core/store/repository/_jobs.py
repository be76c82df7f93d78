"""Reads and writes of the ``mop_jobs`` table (the hopper's sub-epoch jobs).

A row is a ``JobRecord`` (``automl_core.mop.types``): the runner writes what it logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg2 import sql
from psycopg2.extras import execute_values

from automl_core.mop.types import JobRecord
from automl_core.store.repository._common import _t, _text, _tx

# --- hopper jobs ----------------------------------------------------------------------


def record_jobs(conn: Any, experiment_id: int, rows: Sequence[JobRecord]) -> int:
    """Upsert sub-epoch rows in batches; a re-run of a job overwrites its row.

    Within one call the last row for a key wins. Returns the number of distinct rows.
    """
    with _tx(conn) as cur:
        return _upsert_jobs(cur, experiment_id, rows)


def _upsert_jobs(cur: Any, experiment_id: int, rows: Sequence[JobRecord]) -> int:
    latest: dict[tuple[int, int, int, str], JobRecord] = {}
    for job in rows:
        latest[(job.trial_id, job.epoch, job.partition, _text(job.kind))] = job
    if not latest:
        return 0
    values = [
        (experiment_id, trial, epoch, part, kind, j.worker, j.started_at, j.ended_at, j.attempt)
        for (trial, epoch, part, kind), j in latest.items()
    ]
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


def jobs(conn: Any, experiment_id: int) -> list[JobRecord]:
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
        return [JobRecord(*r) for r in cur.fetchall()]
