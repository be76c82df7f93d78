"""A Hyperband experiment whose bracket's rung 0 has finished training, made from rows
alone (no workers): what promotion tests start from."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from automl_core.experiment.api import ExperimentContext, submit_rung_in
from automl_core.experiment.request import SearchRequest
from automl_core.store import repository as repo

SPACE = {"batch_size": [16, 32, 64, 128, 256, 512], "lr": [0.1, 0.03, 0.01, 0.003]}
# Hyperband R=9, eta=3: bracket 2 starts 9 trials and promotes 3 of them from rung 0 to
# rung 1, then 1 to rung 2; bracket 0 has one rung, whose promotion completes its trials.


def trained_rung_0(
    conn: Any, db_url: str, name: str, bracket: int, *, failed: Collection[int] = ()
) -> ExperimentContext:
    """An experiment whose ``bracket``'s rung 0 trained to its target, ready to promote.

    The trials at positions ``failed`` (0-based, in trial order) failed instead, as the
    engine fails a trial: the trial first, then its requests, with no epoch recorded.
    """
    request = SearchRequest(dataset="d", space=SPACE, method="hyperband", R=9, eta=3)
    exp = repo.create_experiment(conn, name=name, method="hyperband", dataset="d",
                                 spec=request.spec(), seed=0)  # fmt: skip
    ctx = ExperimentContext(conn, db_url, exp, request)
    submit_rung_in(ctx, bracket, 0)
    for i, member in enumerate(repo.get_rung(conn, exp.id, bracket, 0)):
        if i in failed:
            repo.set_trial_status(conn, exp.id, [member.trial_id], repo.TrialState.FAILED,
                                  error="the job kept failing")  # fmt: skip
            repo.fail_requests(conn, exp.id, [member.trial_id], "the job kept failing")
            continue
        epoch = member.target_epochs
        repo.record_epoch(conn, exp.id, member.trial_id, epoch, train_loss=None,
                          train_accuracy=None, valid_loss=None,
                          valid_accuracy=0.5 + 0.01 * ((5 * i) % 9), seconds=None,
                          samples=None)  # fmt: skip
        repo.finish_requests(conn, exp.id, member.trial_id, epoch)
    return ctx
