"""Contract tests of automl_core.store.repository against a real PostgreSQL database."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import psycopg2.extensions
import pytest
from psycopg2 import sql

from automl_core.errors import UserInputError
from automl_core.mop.types import JobKind, JobRecord
from automl_core.store import repository as repo
from automl_core.store.repository import RungEntry, TrialRow

SPEC = {"space": {"lr": [0.1, 0.01]}, "epochs": 3}


@pytest.fixture
def exp_id(conn: Any) -> int:
    experiment = repo.create_experiment(
        conn, name="exp", method="grid", dataset="iris", spec=SPEC, seed=7
    )
    return experiment.id


def count(conn: Any, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("automl", table)))
        n = int(cur.fetchone()[0])
    conn.rollback()
    return n


def assert_idle(conn: Any) -> None:
    """Every repository call ends its transaction (commits its own work)."""
    assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE


# --- experiments ----------------------------------------------------------------------


def test_create_experiment_is_idempotent_for_identical_settings(conn: Any) -> None:
    first = repo.create_experiment(
        conn, name="a", method="grid", dataset="iris", spec=SPEC, seed=1, airflow_run_id="r1"
    )
    again = repo.create_experiment(
        conn, name="a", method="grid", dataset="iris", spec=dict(SPEC), seed=1
    )
    assert again == first
    assert first.status == "running" and first.finished_at is None
    assert first.spec == SPEC and first.airflow_run_id == "r1"
    assert count(conn, "experiments") == 1
    assert_idle(conn)


def test_create_experiment_normalises_the_spec_like_json(conn: Any) -> None:
    spec = {"sizes": (16, 32), "lr": 0.001}
    first = repo.create_experiment(conn, name="t", method="random", dataset="d", spec=spec, seed=0)
    assert first.spec == {"sizes": [16, 32], "lr": 0.001}
    again = repo.create_experiment(conn, name="t", method="random", dataset="d", spec=spec, seed=0)
    assert again.id == first.id


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("method", {"method": "random"}),
        ("dataset", {"dataset": "mnist"}),
        ("spec", {"spec": {**SPEC, "epochs": 4}}),
        ("seed", {"seed": 8}),
    ],
)
@pytest.mark.parametrize("step", ["create_experiment", "check_experiment_name"])
def test_create_and_check_refuse_a_taken_name(
    conn: Any, exp_id: int, field: str, changes: dict[str, Any], step: str
) -> None:
    settings: dict[str, Any] = {"method": "grid", "dataset": "iris", "spec": SPEC, "seed": 7}
    repo.check_experiment_name(conn, name="exp", **settings)  # the same search: resumed
    repo.check_experiment_name(conn, name="new", **{**settings, **changes})
    settings.update(changes)
    with pytest.raises(UserInputError, match=rf"'exp' is taken.*different {field}.*--name"):
        getattr(repo, step)(conn, name="exp", **settings)
    assert count(conn, "experiments") == 1
    assert repo.get_experiment(conn, "exp").spec == SPEC


@pytest.mark.parametrize("name", ["", "   "])
def test_create_experiment_rejects_an_empty_name(conn: Any, name: str) -> None:
    with pytest.raises(UserInputError, match="--name"):
        repo.create_experiment(conn, name=name, method="grid", dataset="d", spec={}, seed=0)
    assert count(conn, "experiments") == 0


def test_create_experiment_rejects_a_spec_that_is_not_json(conn: Any) -> None:
    with pytest.raises(UserInputError, match="spec cannot be stored as JSON"):
        repo.create_experiment(
            conn, name="n", method="grid", dataset="d", spec={"lr": float("nan")}, seed=0
        )
    assert count(conn, "experiments") == 0


def test_get_and_list_experiments(conn: Any) -> None:
    a = repo.create_experiment(conn, name="a", method="grid", dataset="d", spec={}, seed=0)
    b = repo.create_experiment(conn, name="b", method="hyperband", dataset="d", spec={}, seed=0)
    assert repo.get_experiment(conn, "b") == b
    assert [e.name for e in repo.list_experiments(conn)] == ["a", "b"]
    assert a.id < b.id
    with pytest.raises(UserInputError, match=r"no experiment named 'zzz'.*'a', 'b'"):
        repo.get_experiment(conn, "zzz")
    assert_idle(conn)


def test_get_experiment_on_an_empty_database_says_none_yet(conn: Any) -> None:
    with pytest.raises(UserInputError, match="none yet"):
        repo.get_experiment(conn, "x")


def test_set_experiment_status(conn: Any, exp_id: int) -> None:
    repo.set_experiment_status(conn, exp_id, "completed", finished=True)
    done = repo.get_experiment(conn, "exp")
    assert done.status == "completed" and done.finished_at is not None
    repo.set_experiment_status(conn, exp_id, "running")
    resumed = repo.get_experiment(conn, "exp")
    assert resumed.status == "running" and resumed.finished_at is None
    with pytest.raises(ValueError, match="status"):
        repo.set_experiment_status(conn, exp_id, "paused")
    with pytest.raises(LookupError):
        repo.set_experiment_status(conn, exp_id + 100, "failed")
    assert_idle(conn)


# --- trials ---------------------------------------------------------------------------


def trial(i: int, **kw: Any) -> TrialRow:
    return TrialRow(trial_id=i, config={"lr": 0.1 * (i + 1)}, **kw)


def test_upsert_trials_inserts_only_absent_ones(conn: Any, exp_id: int) -> None:
    assert repo.upsert_trials(conn, exp_id, [trial(0), trial(1, bracket=2), trial(2)]) == [0, 1, 2]
    changed = TrialRow(trial_id=1, config={"lr": 99.0}, bracket=5)
    assert repo.upsert_trials(conn, exp_id, [changed, trial(3)]) == [3]
    assert repo.upsert_trials(conn, exp_id, [trial(3)]) == []
    assert count(conn, "trials") == 4
    (one,) = repo.get_trials(conn, exp_id, trial_ids=[1])
    assert one == trial(1, bracket=2)  # config and bracket never change
    assert repo.upsert_trials(conn, exp_id, []) == []
    assert_idle(conn)


def test_upsert_trials_rejects_conflicting_duplicates(conn: Any, exp_id: int) -> None:
    assert repo.upsert_trials(conn, exp_id, [trial(0), trial(0)]) == [0]
    with pytest.raises(ValueError, match="Trial 1"):
        repo.upsert_trials(conn, exp_id, [trial(1), TrialRow(1, {"lr": 5})])
    assert count(conn, "trials") == 1


def test_get_trials_filters(conn: Any, exp_id: int) -> None:
    rows = [
        trial(0, bracket=0),
        trial(1, bracket=1),
        trial(2, bracket=1, batch=0),
        trial(3, batch=0),
        trial(4, batch=1),
    ]
    repo.upsert_trials(conn, exp_id, rows)
    other = repo.create_experiment(conn, name="other", method="grid", dataset="d", spec={}, seed=0)
    repo.upsert_trials(conn, other.id, [trial(0, bracket=1)])

    def ids(**kw: Any) -> list[int]:
        return [t.trial_id for t in repo.get_trials(conn, exp_id, **kw)]

    assert ids() == [0, 1, 2, 3, 4]
    assert ids(bracket=1) == [1, 2]
    assert ids(batch=0) == [2, 3]
    assert ids(bracket=1, batch=0) == [2]
    assert ids(trial_ids=[4, 0, 9]) == [0, 4]
    assert ids(trial_ids=[]) == []
    assert repo.get_trials(conn, exp_id, trial_ids=[2])[0].status == "pending"


def test_set_trial_status(conn: Any, exp_id: int) -> None:
    repo.upsert_trials(conn, exp_id, [trial(0), trial(1), trial(2)])
    assert repo.set_trial_status(conn, exp_id, [0, 1, 7], "failed", error="CUDA OOM") == 2
    states = {t.trial_id: (t.status, t.error) for t in repo.get_trials(conn, exp_id)}
    assert states == {0: ("failed", "CUDA OOM"), 1: ("failed", "CUDA OOM"), 2: ("pending", None)}
    assert repo.set_trial_status(conn, exp_id, [0], "running") == 1
    assert repo.get_trials(conn, exp_id, trial_ids=[0])[0].error is None

    class State(StrEnum):
        DONE = "completed"

    repo.set_trial_status(conn, exp_id, [2], State.DONE)
    assert repo.get_trials(conn, exp_id, trial_ids=[2])[0].status == "completed"
    with pytest.raises(ValueError, match="status"):
        repo.set_trial_status(conn, exp_id, [2], "done")
    assert_idle(conn)


def test_set_trial_status_refuses_a_move_its_table_forbids(conn: Any, exp_id: int) -> None:
    repo.upsert_trials(conn, exp_id, [trial(0), trial(1)])
    repo.set_trial_status(conn, exp_id, [0], repo.TrialState.COMPLETED)
    with pytest.raises(
        repo.TransitionError, match=r"trial 0 \(completed\) cannot become 'pending'"
    ):
        repo.set_trial_status(conn, exp_id, [0, 1], repo.TrialState.PENDING)
    statuses = [t.status for t in repo.get_trials(conn, exp_id)]
    assert statuses == [repo.TrialState.COMPLETED, repo.TrialState.PENDING]  # nothing written
    assert repo.set_trial_status(conn, exp_id, [0, 9], "completed") == 1  # a retry is fine
    assert_idle(conn)


def test_set_experiment_status_refuses_a_move_its_table_forbids(conn: Any, exp_id: int) -> None:
    repo.set_experiment_status(conn, exp_id, repo.ExperimentState.FAILED, finished=True)
    with pytest.raises(repo.TransitionError, match="cannot become 'interrupted'"):
        repo.set_experiment_status(conn, exp_id, repo.ExperimentState.INTERRUPTED)
    failed = repo.get_experiment(conn, "exp")
    assert failed.status == repo.ExperimentState.FAILED and failed.finished_at is not None
    assert_idle(conn)


def test_next_trial_id(conn: Any, exp_id: int) -> None:
    assert repo.next_trial_id(conn, exp_id) == 0
    repo.upsert_trials(conn, exp_id, [trial(0), trial(5)])
    assert repo.next_trial_id(conn, exp_id) == 6


# --- epochs ---------------------------------------------------------------------------


def metrics(acc: float | None, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "train_loss": 1.0,
        "train_accuracy": 0.5,
        "valid_loss": 0.9,
        "valid_accuracy": acc,
        "seconds": 2.5,
        "samples": 100,
    }
    values.update(kw)
    return values


def test_record_epoch_upserts_one_row(conn: Any, exp_id: int) -> None:
    repo.record_epoch(conn, exp_id, 0, 1, **metrics(0.4))
    repo.record_epoch(conn, exp_id, 0, 1, **metrics(0.6, samples=120))
    assert count(conn, "trial_epochs") == 1
    (row,) = repo.epochs(conn, exp_id)
    assert (row.trial_id, row.epoch, row.valid_accuracy, row.samples) == (0, 1, 0.6, 120)
    assert row.train_loss == 1.0 and row.seconds == 2.5
    with pytest.raises(ValueError, match="epoch"):
        repo.record_epoch(conn, exp_id, 0, 0, **metrics(0.1))
    assert_idle(conn)


def test_epochs_and_last_epoch(conn: Any, exp_id: int) -> None:
    assert repo.last_epoch(conn, exp_id, 3) == 0
    for trial_id, epoch in [(3, 2), (1, 1), (3, 1), (1, 2), (1, 3)]:
        repo.record_epoch(conn, exp_id, trial_id, epoch, **metrics(0.1 * epoch))
    assert [(r.trial_id, r.epoch) for r in repo.epochs(conn, exp_id)] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (3, 1),
        (3, 2),
    ]
    assert [(r.trial_id, r.epoch) for r in repo.epochs(conn, exp_id, trial_ids=[3])] == [
        (3, 1),
        (3, 2),
    ]
    assert repo.last_epoch(conn, exp_id, 1) == 3
    assert repo.last_epoch(conn, exp_id, 3) == 2


# --- checkpoints ----------------------------------------------------------------------


def test_checkpoint_keeps_the_latest_epoch(conn: Any, exp_id: int) -> None:
    assert repo.load_checkpoint(conn, exp_id, 0) is None
    assert repo.save_checkpoint(conn, exp_id, 0, 2, state=b"\x00two") is True
    assert repo.save_checkpoint(conn, exp_id, 0, 1, state=b"one") is False
    assert repo.load_checkpoint(conn, exp_id, 0) == repo.Checkpoint(2, b"\x00two", None)
    assert repo.save_checkpoint(conn, exp_id, 0, 2, state=b"two again") is True
    assert repo.load_checkpoint(conn, exp_id, 0) == repo.Checkpoint(2, b"two again", None)
    assert repo.save_checkpoint(conn, exp_id, 0, 3, uri="s3://b/k") is True
    assert repo.load_checkpoint(conn, exp_id, 0) == repo.Checkpoint(3, None, "s3://b/k")
    assert count(conn, "checkpoints") == 1
    assert_idle(conn)


def test_checkpoint_needs_state_or_uri(conn: Any, exp_id: int) -> None:
    with pytest.raises(ValueError, match="state"):
        repo.save_checkpoint(conn, exp_id, 0, 1)
    big = bytes(range(256)) * 4096
    repo.save_checkpoint(conn, exp_id, 1, 1, state=big)
    loaded = repo.load_checkpoint(conn, exp_id, 1)
    assert loaded is not None and loaded.state == big


# --- hopper jobs ----------------------------------------------------------------------


def test_record_jobs_upserts_and_a_rerun_overwrites(conn: Any, exp_id: int) -> None:
    rows = [
        JobRecord(0, 1, 0, JobKind.TRAIN, "w0", 10.0, 11.0),
        JobRecord(0, 1, 1, "train", "w1", 10.0, 12.0),
        JobRecord(0, 1, 0, "eval", "w0", 11.0, 11.5),
    ]
    assert repo.record_jobs(conn, exp_id, rows) == 3
    rerun = JobRecord(0, 1, 1, JobKind.TRAIN, "w0", 20.0, 21.0, attempt=2)
    assert repo.record_jobs(conn, exp_id, [rerun]) == 1
    assert count(conn, "mop_jobs") == 3
    stored = repo.jobs(conn, exp_id)
    assert [(j.partition, j.kind, j.worker, j.attempt) for j in stored] == [
        (0, "train", "w0", 1),
        (0, "eval", "w0", 1),
        (1, "train", "w0", 2),
    ]
    assert repo.record_jobs(conn, exp_id, []) == 0
    assert_idle(conn)


def test_record_jobs_batches_and_last_duplicate_wins(conn: Any, exp_id: int) -> None:
    rows = [
        JobRecord(t, 1, p, "train", f"w{p}", t + 0.1, t + 0.2) for t in range(500) for p in (0, 1)
    ]
    rows += [JobRecord(0, 1, 0, "train", "late", 5.0, 6.0, attempt=3)]
    assert repo.record_jobs(conn, exp_id, rows) == 1000
    assert count(conn, "mop_jobs") == 1000
    first = [j for j in repo.jobs(conn, exp_id) if (j.trial_id, j.partition) == (0, 0)]
    assert first == [JobRecord(0, 1, 0, "train", "late", 5.0, 6.0, attempt=3)]


# --- rungs ----------------------------------------------------------------------------


def test_upsert_rung_is_insert_if_absent(conn: Any, exp_id: int) -> None:
    entries = [RungEntry(4, 1), RungEntry(2, 1)]
    assert repo.upsert_rung(conn, exp_id, 0, 0, entries) == [2, 4]
    assert repo.upsert_rung(conn, exp_id, 0, 0, [RungEntry(2, 9), RungEntry(5, 1)]) == [5]
    rung = repo.get_rung(conn, exp_id, 0, 0)
    assert [(r.trial_id, r.target_epochs) for r in rung] == [(2, 1), (4, 1), (5, 1)]
    assert all(r.metric is None and r.promoted is None for r in rung)
    assert repo.get_rung(conn, exp_id, 0, 1) == []
    assert count(conn, "rungs") == 3
    assert_idle(conn)


def test_set_rung_results(conn: Any, exp_id: int) -> None:
    repo.upsert_rung(conn, exp_id, 1, 0, [RungEntry(0, 3), RungEntry(1, 3), RungEntry(2, 3)])
    repo.upsert_rung(conn, exp_id, 1, 1, [RungEntry(0, 9)])
    results = [(0, 0.9, True, "top 1 of 3"), (1, 0.5, False, "below cut"), (2, None, None, None)]
    repo.set_rung_results(conn, exp_id, 1, 0, results)
    repo.set_rung_results(conn, exp_id, 1, 0, results)  # idempotent
    rows = repo.get_rung(conn, exp_id, 1, 0)
    assert [(r.trial_id, r.metric, r.promoted, r.reason) for r in rows] == results
    assert repo.get_rung(conn, exp_id, 1, 1)[0].metric is None  # other rungs untouched
    repo.set_rung_results(conn, exp_id, 1, 0, [repo.RungResult(1, 0.6, True, "re-run")])
    assert repo.get_rung(conn, exp_id, 1, 0)[1] == repo.RungRow(1, 3, 0.6, True, "re-run")
    assert count(conn, "rungs") == 4
    repo.set_rung_results(conn, exp_id, 1, 0, [])


def test_set_rung_results_for_an_absent_trial_writes_nothing(conn: Any, exp_id: int) -> None:
    repo.upsert_rung(conn, exp_id, 0, 0, [RungEntry(0, 1)])
    with pytest.raises(ValueError, match=r"\[7\]"):
        repo.set_rung_results(conn, exp_id, 0, 0, [(0, 0.9, True, "x"), (7, 0.1, False, "y")])
    assert repo.get_rung(conn, exp_id, 0, 0)[0].metric is None
    assert_idle(conn)


# --- results --------------------------------------------------------------------------


def test_finished_trials(conn: Any, exp_id: int) -> None:
    repo.upsert_trials(conn, exp_id, [trial(0), trial(1), trial(2), trial(3)])
    for epoch, acc in [(1, 0.5), (2, 0.8), (3, 0.7)]:
        repo.record_epoch(conn, exp_id, 0, epoch, **metrics(acc))
    repo.record_epoch(conn, exp_id, 2, 1, **metrics(0.3))
    repo.record_epoch(conn, exp_id, 3, 1, **metrics(None))
    other = repo.create_experiment(conn, name="o", method="grid", dataset="d", spec={}, seed=0)
    repo.upsert_trials(conn, other.id, [trial(1)])
    repo.record_epoch(conn, other.id, 1, 1, **metrics(0.99))
    assert repo.finished_trials(conn, exp_id) == [
        (0, trial(0).config, 0.8, 0.7),
        (2, trial(2).config, 0.3, 0.3),
        (3, trial(3).config, None, None),
    ]
    assert_idle(conn)


def test_deleting_an_experiment_cascades(conn: Any, exp_id: int) -> None:
    repo.upsert_trials(conn, exp_id, [trial(0)])
    repo.record_epoch(conn, exp_id, 0, 1, **metrics(0.5))
    repo.save_checkpoint(conn, exp_id, 0, 1, state=b"s")
    repo.record_jobs(conn, exp_id, [JobRecord(0, 1, 0, "train", "w", 1.0, 2.0)])
    repo.upsert_rung(conn, exp_id, 0, 0, [RungEntry(0, 1)])
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM automl.experiments WHERE id = %s", (exp_id,))
    for table in ("trials", "trial_epochs", "checkpoints", "mop_jobs", "rungs"):
        assert count(conn, table) == 0, table
