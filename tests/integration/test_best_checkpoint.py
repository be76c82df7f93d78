"""A trial keeps two states: its latest (to resume from) and its best epoch's (the model).

The best epoch is the leaderboard view's ``best_epoch``: the first epoch with the highest
validation accuracy. Its state is what the leaderboard ranks, export writes and predict
uses; the states of other epochs are not kept.
"""

from __future__ import annotations

from typing import Any

from automl_core.store import repository as repo
from automl_core.store.migrations import MIGRATIONS, migrate


def _experiment(conn: Any, name: str = "e") -> int:
    exp = repo.create_experiment(conn, name=name, method="random", dataset="d", spec={}, seed=0)
    repo.upsert_trials(conn, exp.id, [repo.TrialRow(0, {"lr": 0.1})])
    return exp.id


def _epoch(conn: Any, exp_id: int, epoch: int, accuracy: float | None) -> bool:
    """Record the epoch's metrics, then its checkpoint (as the engine's sink does)."""
    repo.record_epoch(conn, exp_id, 0, epoch, train_loss=1.0, train_accuracy=0.5,
                      valid_loss=1.0, valid_accuracy=accuracy, seconds=0.1,
                      samples=10)  # fmt: skip
    return repo.save_checkpoint(conn, exp_id, 0, epoch, state=f"state {epoch}".encode())


def _best_epoch_in_view(conn: Any, exp_id: int) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT best_epoch FROM automl.leaderboard WHERE experiment_id = %s", (exp_id,))
        (epoch,) = cur.fetchone()
    conn.rollback()
    return int(epoch)


def test_the_best_epoch_state_is_kept_while_training_goes_on(conn: Any) -> None:
    exp_id = _experiment(conn)
    for epoch, accuracy in enumerate([0.6, 0.9, 0.8, 0.9, 0.7], start=1):
        assert _epoch(conn, exp_id, epoch, accuracy)
    latest = repo.load_checkpoint(conn, exp_id, 0)
    best = repo.load_checkpoint(conn, exp_id, 0, best=True)
    assert latest is not None and (latest.epoch, latest.state) == (5, b"state 5")
    # The first epoch with the highest accuracy (a tie later does not replace it).
    assert best is not None and (best.epoch, best.state) == (2, b"state 2")
    assert best.epoch == _best_epoch_in_view(conn, exp_id)


def test_a_better_epoch_replaces_the_best_state_and_a_late_retry_changes_nothing(
    conn: Any,
) -> None:
    exp_id = _experiment(conn)
    _epoch(conn, exp_id, 1, 0.5)
    _epoch(conn, exp_id, 2, 0.7)
    assert not repo.save_checkpoint(conn, exp_id, 0, 1, state=b"late retry of epoch 1")
    best = repo.load_checkpoint(conn, exp_id, 0, best=True)
    assert best is not None and (best.epoch, best.state) == (2, b"state 2")
    _epoch(conn, exp_id, 3, 0.95)
    best = repo.load_checkpoint(conn, exp_id, 0, best=True)
    assert best is not None and (best.epoch, best.state) == (3, b"state 3")


def test_an_epoch_without_a_validation_result_is_never_the_best(conn: Any) -> None:
    exp_id = _experiment(conn)
    _epoch(conn, exp_id, 1, None)
    assert repo.load_checkpoint(conn, exp_id, 0, best=True) is None
    _epoch(conn, exp_id, 2, 0.4)
    best = repo.load_checkpoint(conn, exp_id, 0, best=True)
    assert best is not None and best.epoch == 2


def test_the_migration_keeps_the_best_state_of_trials_saved_before_it(db_url: str) -> None:
    from automl_core.store.connection import connect

    conn = connect(db_url)
    try:
        migrate(conn, MIGRATIONS[:3])
        with conn, conn.cursor() as cur:
            # The row as version 3 wrote it (today's create_experiment needs later columns).
            cur.execute(
                "INSERT INTO automl.experiments (name, method, dataset, spec, seed) "
                "VALUES ('old', 'random', 'd', '{}', 0) RETURNING id"
            )
            (exp_id,) = cur.fetchone()
            for trial in (0, 1):
                cur.execute(
                    "INSERT INTO automl.trials (experiment_id, trial_id, config) "
                    "VALUES (%s, %s, '{}')",
                    (exp_id, trial),
                )
        with conn, conn.cursor() as cur:
            for trial, accuracies in ((0, [0.5, 0.9]), (1, [0.9, 0.5])):
                for epoch, accuracy in enumerate(accuracies, start=1):
                    cur.execute(
                        "INSERT INTO automl.trial_epochs (experiment_id, trial_id, epoch, "
                        "valid_accuracy) VALUES (%s, %s, %s, %s)",
                        (exp_id, trial, epoch, accuracy),
                    )
                cur.execute(
                    "INSERT INTO automl.checkpoints (experiment_id, trial_id, epoch, state) "
                    "VALUES (%s, %s, 2, %s)",
                    (exp_id, trial, b"latest"),
                )
        assert migrate(conn) == [m.version for m in MIGRATIONS[3:]]
        best = repo.load_checkpoint(conn, exp_id, 0, best=True)
        assert best is not None and (best.epoch, best.state) == (2, b"latest")
        # Trial 1's best epoch (1) was overwritten before the migration: nothing to keep.
        assert repo.load_checkpoint(conn, exp_id, 1, best=True) is None
    finally:
        conn.close()
