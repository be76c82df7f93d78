"""The orchestration API: what `automl run` and each Airflow task call.

Every function opens its own connection, rebuilds what it needs from the database and
writes with keyed upserts, so any of them can be killed and run again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from automl_core.errors import UserInputError
from automl_core.experiment import plan
from automl_core.experiment.request import SearchRequest
from automl_core.experiment.training import open_executor, resume_targets, run_targets
from automl_core.store import repository as repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentContext:
    conn: Any
    url: str
    experiment: Any
    request: SearchRequest


@contextlib.contextmanager
def _connection(db_url: str | None) -> Iterator[tuple[Any, str]]:
    from automl_core.store.connection import connect, database_url
    from automl_core.store.migrations import migrate

    url = db_url or database_url()
    conn = connect(url)
    try:
        migrate(conn)
        yield conn, url
    finally:
        conn.close()


@contextlib.contextmanager
def open_experiment(name: str, db_url: str | None) -> Iterator[ExperimentContext]:
    with _connection(db_url) as (conn, url):
        experiment = repo.get_experiment(conn, name)
        request = SearchRequest.from_spec(experiment.dataset, experiment.seed, experiment.spec)
        yield ExperimentContext(conn, url, experiment, request)


def create_experiment(request: SearchRequest, *, db_url: str | None = None) -> dict[str, Any]:
    """Create (or find, if identical) the experiment; validates everything first."""
    request.validate()
    from automl_core.data.reader import dataset_info

    with _connection(db_url) as (conn, _):
        info = dataset_info(conn, request.dataset)
        experiment = repo.create_experiment(
            conn,
            name=request.experiment_name(),
            method=request.method,
            dataset=request.dataset,
            spec=request.spec(),
            seed=request.seed,
            airflow_run_id=request.airflow_run_id,
        )
    return {
        "name": experiment.name,
        "id": experiment.id,
        "method": request.method,
        "dataset": request.dataset,
        "partitions": info.partitions,
    }


# --- Hyperband ------------------------------------------------------------------------------


def start_bracket(name: str, bracket: int, *, db_url: str | None = None) -> list[int]:
    """Sample rung 0 of ``bracket`` and enter it; returns its trial ids."""
    with open_experiment(name, db_url) as ctx:
        schedule = plan.schedule_of(ctx.request)
        trials = plan.bracket_trials(ctx.request, bracket)
        exp_id = ctx.experiment.id
        repo.upsert_trials(
            ctx.conn, exp_id, [repo.TrialRow(t, c, bracket=bracket) for t, c in trials]
        )
        r0 = plan.bracket_of(schedule, bracket).rungs[0].r_i
        repo.upsert_rung(ctx.conn, exp_id, bracket, 0, [repo.RungEntry(t, r0) for t, _ in trials])
        return [t for t, _ in trials]


def rung_items(
    ctx: ExperimentContext, bracket: int, rung: int
) -> list[tuple[int, dict[str, Any], int]]:
    members = repo.get_rung(ctx.conn, ctx.experiment.id, bracket, rung)
    if not members:
        raise UserInputError(
            f"Rung {rung} of bracket {bracket} of experiment {ctx.experiment.name!r} has no "
            "trials yet: run start_bracket / the previous promotion first."
        )
    ids = [m.trial_id for m in members]
    configs = {
        t.trial_id: t.config for t in repo.get_trials(ctx.conn, ctx.experiment.id, trial_ids=ids)
    }
    return [(m.trial_id, configs[m.trial_id], m.target_epochs) for m in members]


def train_rung(
    name: str,
    bracket: int,
    rung: int,
    *,
    workers: int | None = None,
    cluster: str | None = None,
    db_url: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train every trial of the rung to the rung's epoch budget."""
    with open_experiment(name, db_url) as ctx:
        items = rung_items(ctx, bracket, rung)
        return _train(ctx, items, workers=workers, cluster=cluster, progress=progress)


def promote_rung(
    name: str, bracket: int, rung: int, *, db_url: str | None = None
) -> dict[str, Any]:
    """Pick the top floor(n_i/eta) of the rung and enter them in the next rung."""
    from automl_core.search.hyperband import select_survivors

    with open_experiment(name, db_url) as ctx:
        exp_id = ctx.experiment.id
        b = plan.bracket_of(plan.schedule_of(ctx.request), bracket)
        members = rung_items(ctx, bracket, rung)
        scores = _metrics_at(ctx, {t: target for t, _, target in members})
        nxt = b.rungs[rung + 1] if rung + 1 < len(b.rungs) else None
        keep = nxt.n_i if nxt is not None else 0
        survivors = select_survivors(list(scores.items()), keep, mode="max")
        chosen = set(survivors)
        results = [
            (t, scores[t], t in chosen, f"top {keep} of {len(members)} by validation accuracy")
            for t, _, _ in members
        ]
        repo.set_rung_results(ctx.conn, exp_id, bracket, rung, results)
        stopped = [t for t, _, _ in members if t not in chosen]
        if nxt is not None:
            repo.upsert_rung(
                ctx.conn, exp_id, bracket, rung + 1, [repo.RungEntry(t, nxt.r_i) for t in survivors]
            )
            _set_status_unless_failed(ctx, stopped, "stopped")
        else:
            _set_status_unless_failed(ctx, [t for t, _, _ in members], "completed")
        if nxt is not None:
            log.info(
                "bracket %d rung %d: promoted %s, stopped %s", bracket, rung, survivors, stopped
            )
        else:
            log.info("bracket %d rung %d (last): completed %s", bracket, rung, list(scores))
        return {"promoted": survivors, "stopped": stopped if nxt is not None else []}


def _metrics_at(ctx: ExperimentContext, targets: Mapping[int, int]) -> dict[int, float]:
    """Validation accuracy of each trial at its target epoch (NaN when it has none)."""
    rows = repo.epochs(ctx.conn, ctx.experiment.id, trial_ids=list(targets))
    found = {(r.trial_id, r.epoch): r.valid_accuracy for r in rows}
    scores = {}
    for trial_id, epoch in targets.items():
        value = found.get((trial_id, epoch))
        scores[trial_id] = float("nan") if value is None else float(value)
    return scores


# --- batches: grid, random, hyperopt --------------------------------------------------------


def propose_batch(name: str, batch: int, *, db_url: str | None = None) -> list[int]:
    """The trials of ``batch`` (created on first call; the same ids on every later call)."""
    with open_experiment(name, db_url) as ctx:
        exp_id, request = ctx.experiment.id, ctx.request
        existing = repo.get_trials(ctx.conn, exp_id, batch=batch)
        if existing:
            return [t.trial_id for t in existing]
        if request.method == "grid":
            trials = plan.grid_batch(request, batch)
        elif request.method == "random":
            trials = plan.random_batch(request, batch)
        elif request.method == "hyperopt":
            first = batch * request.batch_size
            history = [
                (f.config, f.last_valid_accuracy)
                for f in repo.finished_trials(ctx.conn, exp_id)
                if f.trial_id < first and f.last_valid_accuracy is not None
            ]
            trials = plan.hyperopt_batch(request, batch, history)
        else:
            raise UserInputError(
                f"Experiment {name!r} uses Hyperband: it has brackets, not batches."
            )
        repo.upsert_trials(ctx.conn, exp_id, [repo.TrialRow(t, c, batch=batch) for t, c in trials])
        return [t for t, _ in trials]


def train_batch(
    name: str,
    batch: int,
    *,
    workers: int | None = None,
    cluster: str | None = None,
    db_url: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train every trial of ``batch`` for the experiment's epochs."""
    with open_experiment(name, db_url) as ctx:
        trials = repo.get_trials(ctx.conn, ctx.experiment.id, batch=batch)
        if not trials:
            raise UserInputError(
                f"Batch {batch} of experiment {name!r} has no trials: propose it first."
            )
        items = [(t.trial_id, t.config, ctx.request.epochs) for t in trials]
        summary = _train(ctx, items, workers=workers, cluster=cluster, progress=progress)
        _set_status_unless_failed(ctx, [t.trial_id for t in trials], "completed")
        return summary


def _set_status_unless_failed(ctx: ExperimentContext, trial_ids: list[int], status: str) -> None:
    """Mark trials ``status``, keeping ``failed`` (a rejected configuration) as it is."""
    rows = repo.get_trials(ctx.conn, ctx.experiment.id, trial_ids=trial_ids)
    keep = [t.trial_id for t in rows if t.status != "failed"]
    repo.set_trial_status(ctx.conn, ctx.experiment.id, keep, status)


def _train(
    ctx: ExperimentContext,
    items: list[tuple[int, dict[str, Any], int]],
    *,
    workers: int | None,
    cluster: str | None,
    progress: bool,
) -> dict[str, Any]:
    from automl_core.data.reader import dataset_info

    exp_id = ctx.experiment.id
    info = dataset_info(ctx.conn, ctx.experiment.dataset)
    targets = resume_targets(ctx.conn, exp_id, items, info)
    result: dict[str, Any] = {"trials": [t for t, _, _ in items], "epochs_trained": 0}
    if not targets:
        log.info("nothing left to train: every trial is at its target epoch")
        return result
    repo.set_trial_status(ctx.conn, exp_id, [t.trial_id for t in targets], "running")
    with open_executor(
        ctx.url, info, seed=ctx.request.seed, workers=workers, cluster=cluster
    ) as executor:
        summary = run_targets(
            ctx.conn, exp_id, executor, targets, seed=ctx.request.seed, progress=progress
        )
    result.update(epochs_trained=summary.epochs_trained, jobs=summary.jobs, resets=summary.resets)
    return result
