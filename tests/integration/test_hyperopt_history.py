"""What Hyperopt learns from: every earlier trial, scored by its best epoch (the model
the leaderboard ranks and export hands over), failures told as failures."""

from __future__ import annotations

from typing import Any

from automl_core.experiment.api import ExperimentContext, propose_batch_in
from automl_core.experiment.proposals import history_before
from automl_core.experiment.request import SearchRequest
from automl_core.search.distinct import config_key
from automl_core.store import repository as repo

SPACE = {"batch_size": [16, 32, 64, 128, 256, 512], "lr": [0.1, 0.01]}


def test_history_uses_best_epochs_and_tells_failures(conn: Any, db_url: str) -> None:
    request = SearchRequest(dataset="d", space=SPACE, method="hyperopt", batch_size=4)
    exp = repo.create_experiment(conn, name="h", method="hyperopt", dataset="d",
                                 spec=request.spec(), seed=0)  # fmt: skip
    ctx = ExperimentContext(conn, db_url, exp, request)
    first = propose_batch_in(ctx, 0)
    trials = {t.trial_id: t for t in repo.get_trials(conn, exp.id)}
    runs = {0: [0.5, 0.8, 0.6], 2: [0.7], 3: [0.9]}  # trial 1 never trained
    for trial, accuracies in runs.items():
        for epoch, accuracy in enumerate(accuracies, start=1):
            repo.record_epoch(conn, exp.id, trial, epoch, train_loss=None, train_accuracy=None,
                              valid_loss=None, valid_accuracy=accuracy, seconds=None,
                              samples=None)  # fmt: skip
    repo.set_trial_status(conn, exp.id, [1], "failed", error="rejected before training")
    repo.set_trial_status(conn, exp.id, [3], "failed", error="failed in epoch 2")
    history = history_before(ctx, 4)  # batch 1 starts at trial 4
    assert [c for c, _ in history] == [trials[t].config for t in first]
    assert [m for _, m in history] == [0.8, None, 0.7, None]
    # The next batch repeats none of them, the failed ones included.
    propose_batch_in(ctx, 1)
    keys = [config_key(t.config) for t in repo.get_trials(conn, exp.id)]
    assert len(keys) == 8 and len(set(keys)) == 8
