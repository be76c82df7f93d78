"""What a finished search decided and measured, read back for comparing two runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automl_core.experiment import SearchRequest, search_plan
from automl_core.mop.joblog import check_job_log
from automl_core.mop.visit_order import train_order
from automl_core.store import repository as repo
from automl_core.store.connection import connect


@dataclass(frozen=True)
class SearchOutcome:
    # (trial, epoch) -> (train loss, train accuracy, valid loss, valid accuracy)
    metrics: dict[tuple[int, int], tuple[Any, ...]]
    rungs: dict[tuple[int, int], list[tuple[int, Any]]]  # (bracket, rung) -> (trial, promoted)
    best_trial: int
    log: list[tuple[Any, ...]]  # job-log rows: trial, epoch, partition, kind, worker, times
    seed: int


def search_outcome(url: str, name: str) -> SearchOutcome:
    conn = connect(url)
    try:
        exp = repo.get_experiment(conn, name)
        request = SearchRequest.from_spec(exp.dataset, exp.seed, exp.spec)
        metrics = {
            (r.trial_id, r.epoch): (r.train_loss, r.train_accuracy, r.valid_loss, r.valid_accuracy)
            for r in repo.epochs(conn, exp.id)
        }
        rungs = {
            (group.index, step.rung): sorted(
                (m.trial_id, m.promoted)
                for m in repo.get_rung(conn, exp.id, group.index, step.rung)
            )
            for group in search_plan(request).groups
            if group.kind == "bracket"
            for step in group.rungs
        }
        log = [
            (j.trial_id, j.epoch, j.partition, j.kind, j.worker, j.started_at, j.ended_at)
            for j in repo.jobs(conn, exp.id)
        ]
    finally:
        conn.close()
    best = max(metrics, key=lambda k: (metrics[k][3], -k[0], -k[1]))[0]
    return SearchOutcome(metrics, rungs, best, log, exp.seed)


def check_seeded_order(outcome: SearchOutcome, partitions: list[int]) -> None:
    """Every TRAIN pass in the job log followed the model's seeded order of partitions."""
    epochs = {(row[0], row[1]) for row in outcome.log}
    check_job_log(
        outcome.log,
        [(trial, epoch - 1, epoch) for trial, epoch in epochs],
        partitions,
        False,
        lambda m, e: train_order(outcome.seed, m, e, partitions),
    )
