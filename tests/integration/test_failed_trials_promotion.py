"""A failed trial never survives a rung: the rung keeps the trials that have a result,
and one where every trial failed keeps none, so its bracket ends there; the later
rungs' steps (the engine's, or an Airflow task's) then have nothing to do."""

from __future__ import annotations

from typing import Any

from automl_core.experiment.api import ended_before, promote_rung_in, submit_rung_in
from automl_core.experiment.driver import SearchDriver
from automl_core.store import repository as repo
from tests.integration.rung_setup import trained_rung_0


def _statuses(conn: Any, exp_id: int) -> dict[int, str]:
    return {t.trial_id: str(t.status) for t in repo.get_trials(conn, exp_id)}


def test_fewer_trials_with_a_result_than_places_keep_just_those(conn: Any, db_url: str) -> None:
    # Bracket 2 keeps 3 of its 9 trials; 7 failed, so only the other 2 can go on.
    ctx = trained_rung_0(conn, db_url, "mostly-failed", 2, failed=range(7))
    ids = [m.trial_id for m in repo.get_rung(conn, ctx.experiment.id, 2, 0)]
    decision = promote_rung_in(ctx, 2, 0)
    assert decision["promoted"] == ids[7:]
    assert [m.trial_id for m in repo.get_rung(conn, ctx.experiment.id, 2, 1)] == ids[7:]
    statuses = _statuses(conn, ctx.experiment.id)
    assert {statuses[t] for t in ids[:7]} == {"failed"}
    assert not ended_before(ctx, 2, 1)


def test_a_rung_where_every_trial_failed_ends_its_bracket(conn: Any, db_url: str) -> None:
    ctx = trained_rung_0(conn, db_url, "all-failed", 2, failed=range(9))
    exp_id = ctx.experiment.id
    ids = [m.trial_id for m in repo.get_rung(conn, exp_id, 2, 0)]
    assert promote_rung_in(ctx, 2, 0) == {"promoted": [], "stopped": ids}
    assert repo.get_rung(conn, exp_id, 2, 1) == []
    assert ended_before(ctx, 2, 1) and ended_before(ctx, 2, 2)
    # The later rungs' tasks (train, promote) succeed with nothing to do, as often as run.
    for rung in (1, 2):
        for _ in range(2):
            assert submit_rung_in(ctx, 2, rung) == []
            assert promote_rung_in(ctx, 2, rung) == {"promoted": [], "stopped": []}
    assert repo.get_requests(conn, exp_id, bracket=2, rung=1) == []
    assert set(_statuses(conn, exp_id).values()) == {"failed"}

    released: list[list[int]] = []
    driver = SearchDriver(ctx, release=released.append)
    driver.advance([("bracket", 2)])
    assert released == [ids]
    assert driver._complete == {"bracket_2"}
