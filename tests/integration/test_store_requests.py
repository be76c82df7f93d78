"""The training engine's queue and lease against a real PostgreSQL database."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest

from automl_core.store import repository as repo
from automl_core.store.repository import RequestState, TrainingRequest


@pytest.fixture
def exp_id(conn: Any) -> int:
    experiment = repo.create_experiment(
        conn, name="exp", method="hyperband", dataset="d", spec={"space": {}}, seed=0
    )
    return experiment.id


def rung(trials: list[int], target: int, bracket: int = 2, rung: int = 0) -> list[TrainingRequest]:
    return [TrainingRequest(t, target, bracket=bracket, rung=rung) for t in trials]


def states(conn: Any, exp_id: int) -> dict[tuple[int, int], str]:
    return {(r.trial_id, r.target_epoch): r.state.value for r in repo.get_requests(conn, exp_id)}


def test_submitting_twice_queues_each_request_once(conn: Any, exp_id: int) -> None:
    first = repo.submit_requests(conn, exp_id, rung([0, 1, 2], 1))
    assert [(r.trial_id, r.state) for r in first] == [(t, RequestState.QUEUED) for t in (0, 1, 2)]
    assert repo.submit_requests(conn, exp_id, rung([0, 1, 2, 3], 1)) == rung([3], 1)
    assert len(repo.get_requests(conn, exp_id)) == 4


def test_a_request_moves_queued_running_done_and_never_back(conn: Any, exp_id: int) -> None:
    repo.submit_requests(conn, exp_id, rung([0, 1], 1) + rung([0], 3, rung=1))
    claimed = repo.claim_requests(conn, exp_id)
    assert [(r.trial_id, r.target_epoch) for r in claimed] == [(0, 1), (0, 3), (1, 1)]
    assert repo.claim_requests(conn, exp_id) == []  # nothing queued any more
    # Reaching epoch 1 finishes only the targets up to 1.
    done = repo.finish_requests(conn, exp_id, 0, 1)
    assert [(r.trial_id, r.target_epoch) for r in done] == [(0, 1)]
    assert states(conn, exp_id) == {(0, 1): "done", (0, 3): "running", (1, 1): "running"}
    # A restarted engine requeues what was running; done stays done.
    assert repo.requeue_running(conn, exp_id) == 2
    assert states(conn, exp_id) == {(0, 1): "done", (0, 3): "queued", (1, 1): "queued"}
    failed = repo.fail_requests(conn, exp_id, [1], "diverged")
    assert [(r.trial_id, r.error) for r in failed] == [(1, "diverged")]
    assert repo.finish_requests(conn, exp_id, 1, 5) == []  # failed is final
    assert repo.fail_requests(conn, exp_id, [0], "late") == [
        TrainingRequest(0, 3, bracket=2, rung=1, state=RequestState.FAILED, error="late")
    ]
    assert repo.get_requests(conn, exp_id, bracket=2, rung=0)[0].state is RequestState.DONE


def test_a_request_names_a_rung_or_a_batch(conn: Any, exp_id: int) -> None:
    repo.submit_requests(conn, exp_id, [TrainingRequest(0, 2, batch=0)])
    assert repo.get_requests(conn, exp_id, batch=0)[0].batch == 0
    with pytest.raises(psycopg2.errors.CheckViolation):
        repo.submit_requests(conn, exp_id, [TrainingRequest(1, 2, bracket=1, rung=0, batch=0)])
    with pytest.raises(psycopg2.errors.CheckViolation):
        repo.submit_requests(conn, exp_id, [TrainingRequest(2, 2)])


def test_the_transition_table_allows_no_way_out_of_done_or_failed() -> None:
    assert repo.REQUEST_TRANSITIONS[RequestState.DONE] == frozenset()
    assert repo.REQUEST_TRANSITIONS[RequestState.FAILED] == frozenset()
    assert RequestState.QUEUED in repo.REQUEST_TRANSITIONS[RequestState.RUNNING]


def test_the_engine_lease_counts_starts_and_ages_its_heartbeat(conn: Any, exp_id: int) -> None:
    assert repo.get_engine(conn, exp_id) is None
    assert repo.start_engine(conn, exp_id, host="h", pid=11) == 1
    with pytest.raises(repo.EngineBusyError):  # host h's engine beat just now
        repo.start_engine(conn, exp_id, host="h", pid=12)
    repo.stop_engine(conn, exp_id)
    assert repo.start_engine(conn, exp_id, host="h", pid=12) == 2
    repo.engine_heartbeat(conn, exp_id)
    lease = repo.get_engine(conn, exp_id)
    assert lease is not None and (lease.pid, lease.starts, lease.stopped) == (12, 2, False)
    assert 0 <= lease.heartbeat_age_s < 5
    repo.stop_engine(conn, exp_id)
    lease = repo.get_engine(conn, exp_id)
    assert lease is not None and lease.stopped
