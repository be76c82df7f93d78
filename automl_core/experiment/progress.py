"""Where a search stands, read from the database alone.

``automl watch`` prints one line per bracket or batch as it changes, so a person sees
the brackets of a search advance side by side whichever process trains them (`automl
run`, the engine task of an Airflow DAG run); a waiting training task counts its rung's
or batch's requests in each state (``ProgressReader``).
"""

from __future__ import annotations

from typing import Any

from automl_core.experiment.plan import PlanGroup, search_plan
from automl_core.experiment.request import SearchRequest
from automl_core.store import repository as repo


def group_lines(conn: Any, experiment: repo.Experiment) -> dict[str, str]:
    """Group id -> a one-line state, e.g. ``rung 1 of 0-2 (3 x 3 epochs): 2 of 3 trained``."""
    request = SearchRequest.from_spec(experiment.dataset, experiment.seed, experiment.spec)
    by_group: dict[tuple[bool, int | None], list[repo.TrainingRequest]] = {}
    for r in repo.get_requests(conn, experiment.id):
        # Grouped once, not scanned per group: a grid can have 100,000 batches.
        key = (True, r.bracket) if r.bracket is not None else (False, r.batch)
        by_group.setdefault(key, []).append(r)
    return {
        group.group_id: _line(
            conn, experiment.id, group, by_group.get((group.promotes, group.index), [])
        )
        for group in search_plan(request).groups
    }


def rung_label(rung: int, rungs: int) -> str:
    """``rung 1 of 0-2``: the 0-based number that logs, the leaderboard, the report and
    the DAG's ``train_rung_<i>`` tasks use, with the group's range of rung numbers (a
    bare ``1/2`` would read as "the first of two")."""
    return f"rung {rung} of 0-{rungs - 1}" if rungs > 1 else f"rung {rung}, the only one"


def _line(conn: Any, experiment_id: int, group: PlanGroup, mine: list[repo.TrainingRequest]) -> str:
    """The line of ``group``, whose requests are ``mine``."""
    if not mine:
        return "waiting"
    current = max(r.rung or 0 for r in mine)
    step = group.rungs[current]
    at_rung = [r for r in mine if (r.rung or 0) == current]
    done = sum(r.state == repo.RequestState.DONE for r in at_rung)
    failed = sum(r.state == repo.RequestState.FAILED for r in at_rung)
    where = f"{rung_label(current, len(group.rungs))} " if group.promotes else ""
    text = f"{where}({step.n} x {step.target_epoch} epochs): {done + failed} of {len(at_rung)}"
    text += " trained" + (f", {failed} failed" if failed else "")
    if done + failed == len(at_rung) and (not group.promotes or current == len(group.rungs) - 1):
        decided = not group.promotes or any(
            m.promoted is not None for m in repo.get_rung(conn, experiment_id, group.index, current)
        )
        if decided:
            text += "; complete"
    return text


class ProgressReader:
    """The request states of one rung or batch, read again and again.

    What a waiting training task polls (from Airflow's triggerer): two small queries a
    read, no migration check, over the process's one connection to the database
    (``SharedConnection``: a hundred waiting tasks hold one connection, and a read rides
    out a lost server for ``AUTOML_DB_RETRY_S``, then raises DatabaseLostError).
    """

    def __init__(
        self,
        name: str,
        *,
        bracket: int | None = None,
        rung: int | None = None,
        batch: int | None = None,
        db_url: str | None = None,
    ) -> None:
        from automl_core.store.connection import SharedConnection, database_url

        self._db = SharedConnection(db_url or database_url())
        try:
            self._experiment_id = self._db.run(lambda c: repo.get_experiment(c, name).id)
        except BaseException:
            self._db.close()
            raise
        self._where = {"bracket": bracket, "rung": rung, "batch": batch}

    def counts(self) -> dict[str, int]:
        """Requests in each state, plus ``engine_starts`` and ``engine_heartbeat_age_s``
        (-1 while no engine runs: none has started, or the last one stopped)."""

        def read(conn: Any) -> tuple[list[repo.TrainingRequest], repo.EngineLease | None]:
            rows = repo.get_requests(conn, self._experiment_id, **self._where)
            return rows, repo.get_engine(conn, self._experiment_id)

        rows, lease = self._db.run(read)
        counts = {state.value: 0 for state in repo.RequestState}
        for r in rows:
            counts[r.state.value] += 1
        counts["engine_starts"] = lease.starts if lease else 0
        running = lease if lease is not None and not lease.stopped else None
        counts["engine_heartbeat_age_s"] = int(running.heartbeat_age_s) if running else -1
        return counts

    def close(self) -> None:
        self._db.close()


def request_progress(
    name: str,
    *,
    bracket: int | None = None,
    rung: int | None = None,
    batch: int | None = None,
    db_url: str | None = None,
) -> dict[str, int]:
    """How many requests of a rung or batch are in each state (see ``ProgressReader``)."""
    reader = ProgressReader(name, bracket=bracket, rung=rung, batch=batch, db_url=db_url)
    try:
        return reader.counts()
    finally:
        reader.close()
