"""A step cut short after any of its writes (the process killed, the database lost) is
taken again whole, and the rows end as if it had run through: a promotion (the survivors
entered in the next rung, the others stopped or the last rung's trials completed, the
decision recorded), and a trial's failure (the trial failed with its error, its requests
failed)."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest

from automl_core.experiment import create_experiment, propose_batch, run_engine
from automl_core.experiment.api import promote_rung_in
from automl_core.experiment.driver import SearchDriver
from automl_core.experiment.request import SearchRequest
from automl_core.store import repository as repo
from tests.integration.rung_setup import trained_rung_0

# Bracket 2 promotes 3 of its 9 trials from rung 0 to rung 1; bracket 0 has one rung,
# whose promotion completes its 3 trials (tests.integration.rung_setup).
CUTS = [
    (2, "upsert_rung"),
    (2, "set_trial_status"),
    (2, "set_rung_results"),
    (0, "set_trial_status"),
    (0, "set_rung_results"),
]


class _CutShort(RuntimeError):
    """The process died (or lost its connection) right after a write was committed."""


def _outcome(conn: Any, exp_id: int, bracket: int) -> tuple[Any, ...]:
    rungs = [
        sorted(
            (m.trial_id, m.promoted, m.target_epochs)
            for m in repo.get_rung(conn, exp_id, bracket, rung)
        )
        for rung in (0, 1)
    ]
    statuses = sorted((t.trial_id, str(t.status)) for t in repo.get_trials(conn, exp_id))
    return rungs[0], rungs[1], statuses


@pytest.mark.parametrize(("bracket", "write"), CUTS)
def test_a_promotion_cut_short_after_any_write_is_taken_again_whole(
    conn: Any, db_url: str, monkeypatch: pytest.MonkeyPatch, bracket: int, write: str
) -> None:
    through = trained_rung_0(conn, db_url, "through", bracket)
    decision = promote_rung_in(through, bracket, 0)
    expected = _outcome(conn, through.experiment.id, bracket)
    assert any(promoted for _, promoted, _ in expected[0]) == (bracket == 2)

    cut = trained_rung_0(conn, db_url, "cut", bracket)
    real = getattr(repo, write)

    def write_then_die(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise _CutShort(write)

    monkeypatch.setattr(repo, write, write_then_die)
    with pytest.raises(_CutShort):
        promote_rung_in(cut, bracket, 0)
    monkeypatch.undo()

    # Taken again (by the engine's retry, or by the promotion task): the same decision,
    # and every row as if it had run through.
    assert promote_rung_in(cut, bracket, 0) == decision
    assert _outcome(conn, cut.experiment.id, bracket) == expected


@pytest.mark.parametrize("write", ["set_trial_status", "fail_requests"])
def test_a_failure_cut_short_after_any_write_is_taken_again_whole(
    digits_url: str, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    # nesterov needs momentum > 0: the engine rejects trial 0 when it claims it, before
    # anything trains, and fails it; trial 1 trains.
    space = {"architecture": "mlp", "hidden": 32, "lr": 0.1, "momentum": [0.0, 0.9],
             "nesterov": True, "optimizer": "sgd", "batch_size": 64}  # fmt: skip
    name = f"cut-failure-after-{write}"  # digits_url is shared by the session's tests
    request = SearchRequest(dataset="digits", space=space, method="grid", name=name,
                            epochs=1, batch_size=2)  # fmt: skip
    create_experiment(request, db_url=digits_url)
    assert propose_batch(name, 0, db_url=digits_url) == [0, 1]
    real = getattr(repo, write)

    def write_then_die(conn: Any, exp_id: int, trial_ids: Any, *args: Any, **kw: Any) -> Any:
        result = real(conn, exp_id, trial_ids, *args, **kw)
        if write == "fail_requests" or args[0] == repo.TrialState.FAILED:
            raise _CutShort(write)
        return result

    monkeypatch.setattr(repo, write, write_then_die)
    with pytest.raises(_CutShort):
        run_engine(name, db_url=digits_url)
    monkeypatch.undo()

    run_engine(name, db_url=digits_url)  # the engine started again
    conn = psycopg2.connect(digits_url)
    try:
        exp = repo.get_experiment(conn, name)
        trials = {t.trial_id: t for t in repo.get_trials(conn, exp.id)}
        assert (trials[0].status, trials[1].status) == ("failed", "completed")
        assert "nesterov" in (trials[0].error or "")
        states = {r.trial_id: r.state for r in repo.get_requests(conn, exp.id)}
        assert states == {0: repo.RequestState.FAILED, 1: repo.RequestState.DONE}
    finally:
        conn.close()


@pytest.mark.parametrize("decided_by", ["driver", "elsewhere"])
def test_a_decided_rung_releases_its_stopped_trials_once_whoever_decided(
    conn: Any, db_url: str, decided_by: str
) -> None:
    # "elsewhere": an Airflow promotion task, or an earlier try of the driver's step
    # cut short after the decision committed and before the release.
    ctx = trained_rung_0(conn, db_url, f"release-{decided_by}", 2)
    stopped = promote_rung_in(ctx, 2, 0)["stopped"] if decided_by == "elsewhere" else None
    released: list[list[int]] = []
    driver = SearchDriver(ctx, release=released.append)
    driver.advance([("bracket", 2)])  # submits rung 1, which then waits for training
    driver.advance([("bracket", 2)])
    stopped = stopped or promote_rung_in(ctx, 2, 0)["stopped"]
    assert len(stopped) == 6
    assert released == [stopped]
