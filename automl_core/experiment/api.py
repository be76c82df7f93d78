"""The steps of a search: what the engine's driver and each Airflow task call.

Every step rebuilds what it needs from the database and writes with keyed upserts, so it
can be killed and run again, by any process, and gives the same answer: submitting a
rung twice queues nothing new; promoting a rung that is already decided returns the
recorded decision. Each public step opens its own connection; the ``*_in`` variants take
an open ``ExperimentContext`` (the engine's driver reuses its connection).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from automl_core.errors import UserInputError
from automl_core.experiment.plan import SearchPlan, search_plan
from automl_core.experiment.proposals import enter_group
from automl_core.experiment.request import SearchRequest
from automl_core.search.groups import PlanGroup
from automl_core.search.methods import get_method
from automl_core.store import repository as repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentContext:
    conn: Any
    url: str
    experiment: Any
    request: SearchRequest
    # Filled on first use; ``dataclasses.replace`` (the driver's per-connection copies)
    # carries it over, so a context computes its plan once.
    plan_cache: SearchPlan | None = field(default=None, repr=False, compare=False)

    @property
    def plan(self) -> SearchPlan:
        """The request's search plan (``plan.search_plan``)."""
        if self.plan_cache is None:
            object.__setattr__(self, "plan_cache", search_plan(self.request))
        assert self.plan_cache is not None
        return self.plan_cache


@contextlib.contextmanager
def _connection(db_url: str | None) -> Iterator[tuple[Any, str]]:
    from automl_core.store.connection import database_url
    from automl_core.store.migrations import migrated_connection

    url = db_url or database_url()
    with migrated_connection(url) as conn:
        yield conn, url


@contextlib.contextmanager
def connection_to_read(name: str, db_url: str | None = None) -> Iterator[Any]:
    """A connection for a step that needs the experiment ``name`` to exist: the automl
    schema brought up to date; a database without it raises UserInputError naming
    ``name`` and AUTOML_DB_URL, having created nothing (a mistyped URL must not leave a
    schema in someone's warehouse)."""
    from automl_core.store.migrations import migrated_connection_if_any

    with migrated_connection_if_any(db_url) as conn:
        if conn is None:
            raise UserInputError(
                f"There is no experiment named {name!r} in this database: it holds no "
                "experiments yet. Check AUTOML_DB_URL if the experiment lives in another "
                "database."
            )
        yield conn


@contextlib.contextmanager
def open_experiment(name: str, db_url: str | None) -> Iterator[ExperimentContext]:
    with _connection(db_url) as (conn, url):
        experiment = repo.get_experiment(conn, name)
        request = SearchRequest.from_spec(experiment.dataset, experiment.seed, experiment.spec)
        yield ExperimentContext(conn, url, experiment, request)


def create_experiment(request: SearchRequest, *, db_url: str | None = None) -> dict[str, Any]:
    """Create (or find, if identical) the experiment; validates everything first.

    A ``parent_experiment`` must exist (``UserInputError`` listing the experiments).
    """
    request.validate()
    from automl_core.data.ensure import source_change
    from automl_core.data.reader import dataset_info, experiment_dataset
    from automl_core.experiment.space_keys import check_space_on_data
    from automl_core.space import SearchSpace

    with _connection(db_url) as (conn, _):
        # Held until the experiment's insert commits: a prepare of this data set either
        # finished before (its row is read below) or waits, then sees the new experiment
        # still training and refuses to pack again.
        repo.lock_dataset(conn, request.dataset)
        info = dataset_info(conn, request.dataset)
        check_space_on_data(
            SearchSpace.from_dict(request.space), info.feature_shape, info.num_classes
        )
        if request.parent_experiment is not None:
            repo.get_experiment(conn, request.parent_experiment)
        experiment = repo.create_experiment(
            conn,
            airflow_run_id=request.airflow_run_id,
            data=info.record(),
            **experiment_definition(request),
        )
        if experiment_dataset(conn, experiment) != info:
            raise UserInputError(
                f"The experiment {experiment.name!r} trained on data set {info.name!r} as it "
                "was packed then, and the data set has been packed again since: its trials "
                "cannot go on with other rows. Give this search another name (--name, or "
                "experiment_name in a DAG run's conf)."
            )
        # `automl run` packs nothing, so it says when the table moved on; a DAG run's
        # data step has just packed it again if it had (no second scan of the table).
        change = source_change(conn, info) if request.airflow_run_id is None else None
        if change is not None:
            log.warning(
                "The table %s %s: this search trains on the rows as packed then. Run "
                "`automl data prepare %s --partitions %d` to search its rows as they are now.",
                info.source_table or info.name,
                change,
                info.name,
                info.partitions,
            )
    return {
        "name": experiment.name,
        "id": experiment.id,
        "method": request.method,
        "dataset": request.dataset,
        "partitions": info.partitions,
    }


def check_experiment_name(request: SearchRequest, *, db_url: str | None = None) -> None:
    """Refuse, writing nothing, a name taken by an experiment that ``create_experiment``
    would refuse (UserInputError, as ``repo.check_experiment_name``): ``validate_conf``
    calls it before ``prepare_data`` packs the table."""
    from automl_core.store.migrations import migrated_connection_if_any

    with migrated_connection_if_any(db_url) as conn:
        if conn is not None:
            repo.check_experiment_name(conn, **experiment_definition(request))


def experiment_definition(request: SearchRequest) -> dict[str, Any]:
    """What an experiment's name stands for: a rerun must repeat all of it to resume."""
    return {
        "name": request.experiment_name(),
        "method": request.method,
        "dataset": request.dataset,
        "spec": request.spec(),
        "seed": request.seed,
        "parent_experiment": request.parent_experiment,
    }


def _group(ctx: ExperimentContext, kind: str, index: int) -> PlanGroup:
    """The plan's ``kind`` ``index``; UserInputError naming the groups the plan has."""
    try:
        return ctx.plan.group(kind, index)
    except KeyError:
        groups = ", ".join(g.group_id for g in ctx.plan.groups)
        raise UserInputError(
            f"Experiment {ctx.experiment.name!r} ({ctx.request.method}) has no {kind} {index}; "
            f"its plan has {groups}."
        ) from None


# --- brackets: rungs and promotions ----------------------------------------------------------


def submit_rung_in(ctx: ExperimentContext, bracket: int, rung: int) -> list[int]:
    """Ask the engine to train every trial of the rung to the rung's epochs.

    Rung 0 is sampled first if the bracket has not started. Returns the rung's trial ids:
    none when the bracket ended before it (``ended_before``). Raises UserInputError when
    rung > 0 has no trials yet (its promotion has not run).
    """
    exp_id = ctx.experiment.id
    members = repo.get_rung(ctx.conn, exp_id, bracket, rung)
    if not members and rung == 0:
        enter_group(ctx, _group(ctx, "bracket", bracket))
        members = repo.get_rung(ctx.conn, exp_id, bracket, rung)
    if not members and ended_before(ctx, bracket, rung):
        return []
    if not members:
        raise UserInputError(
            f"Rung {rung} of bracket {bracket} of experiment {ctx.experiment.name!r} has no "
            "trials yet: the promotion of the rung before it has not run."
        )
    requests = [
        repo.TrainingRequest(m.trial_id, m.target_epochs, bracket=bracket, rung=rung)
        for m in members
    ]
    _submit(ctx, requests)
    return [m.trial_id for m in members]


def promote_rung_in(ctx: ExperimentContext, bracket: int, rung: int) -> dict[str, Any]:
    """Enter the survivors the method picks (``SearchMethod.promote``) in the next rung.

    A rung that is already decided keeps its decision (and returns it). Returns
    ``{"promoted": [...], "stopped": [...]}``, trial ids in ascending order (both empty
    for a bracket's last rung, and for a rung the bracket ended before). Raises
    UserInputError while a request of the rung is still unfinished.
    """
    exp_id = ctx.experiment.id
    group = _group(ctx, "bracket", bracket)
    steps = group.rungs
    members = repo.get_rung(ctx.conn, exp_id, bracket, rung)
    nxt = steps[rung + 1] if rung + 1 < len(steps) else None
    if members and all(m.promoted is not None for m in members):
        return _recorded_decision(members, last=nxt is None)
    if not members and ended_before(ctx, bracket, rung):
        return {"promoted": [], "stopped": []}
    unfinished = unfinished_trials(ctx, bracket=bracket, rung=rung)
    if not members or unfinished:
        raise UserInputError(
            f"Rung {rung} of bracket {bracket} of experiment {ctx.experiment.name!r} cannot "
            f"be promoted yet: trials {unfinished or 'none'} have not finished training."
        )
    scores = _metrics_at(ctx, {m.trial_id: m.target_epochs for m in members})
    decision = get_method(ctx.request.method).promote(group, rung, list(scores.items()))
    survivors = decision.survivors
    chosen = set(survivors)
    ids = [m.trial_id for m in members]
    stopped = [t for t in ids if t not in chosen]
    # The rung's results go last: they mark it decided (above). A promotion cut short
    # after any earlier write (a crash, a lost connection) leaves the rung undecided, and
    # the next call takes it again whole, with the same survivors (the same scores); each
    # write is idempotent. Written first, they would leave a decided rung whose survivors
    # were never entered, and the bracket would end there as if none had survived.
    if nxt is not None:
        repo.upsert_rung(
            ctx.conn,
            exp_id,
            bracket,
            rung + 1,
            [repo.RungEntry(t, nxt.target_epoch) for t in survivors],
        )
        _set_status_unless_failed(ctx, stopped, repo.TrialState.STOPPED)
    else:
        _set_status_unless_failed(ctx, ids, repo.TrialState.COMPLETED)
    # On a bracket's last rung nothing follows: `promoted` stays false (a rung whose
    # trials all have a decision is decided), and the reason says why.
    reason = decision.reason if nxt is not None else "last rung of its bracket: completed"
    rows = [(t, scores[t], t in chosen, reason) for t in scores]
    repo.set_rung_results(ctx.conn, exp_id, bracket, rung, rows)
    if nxt is None:
        log.info("bracket %d rung %d (last): completed %s", bracket, rung, ids)
        return {"promoted": [], "stopped": []}
    log.info("bracket %d rung %d: promoted %s, stopped %s", bracket, rung, survivors, stopped)
    # In trial id order, as a recorded decision reads back.
    return {"promoted": sorted(survivors), "stopped": stopped}


def ended_before(ctx: ExperimentContext, bracket: int, rung: int) -> bool:
    """True when the bracket ended before ``rung``: an earlier rung was decided and kept
    no trial (none of its trials had a result: every one failed), so this rung and the
    later ones have nothing to train. Their Airflow tasks then succeed at once."""
    for earlier in range(rung - 1, -1, -1):
        members = repo.get_rung(ctx.conn, ctx.experiment.id, bracket, earlier)
        if members:
            return all(m.promoted is False for m in members)
    return False


def _recorded_decision(members: Sequence[repo.RungRow], *, last: bool) -> dict[str, Any]:
    if last:
        return {"promoted": [], "stopped": []}
    return {
        "promoted": [m.trial_id for m in members if m.promoted],
        "stopped": [m.trial_id for m in members if not m.promoted],
    }


def _metrics_at(ctx: ExperimentContext, targets: Mapping[int, int]) -> dict[int, float]:
    """Validation accuracy of each trial at its target epoch (NaN when it has none).

    Promotion decides which trials train on, and a promoted trial continues from its
    state at that epoch, so that state is what is ranked (Li et al., JMLR 2018; Ray Tune
    and Optuna's successive halving do the same). The leaderboard and export rank and
    hand over each trial's best epoch instead (docs/decisions.md).
    """
    rows = repo.epochs(ctx.conn, ctx.experiment.id, trial_ids=list(targets))
    found = {(r.trial_id, r.epoch): r.valid_accuracy for r in rows}
    scores = {}
    for trial_id, epoch in targets.items():
        value = found.get((trial_id, epoch))
        scores[trial_id] = float("nan") if value is None else float(value)
    return scores


# --- batches ---------------------------------------------------------------------------------


def propose_batch_in(ctx: ExperimentContext, batch: int) -> list[int]:
    """The trials of ``batch`` (created on first call; the same ids on every later call)."""
    existing = repo.get_trials(ctx.conn, ctx.experiment.id, batch=batch)
    if existing:
        return [t.trial_id for t in existing]
    return enter_group(ctx, _group(ctx, "batch", batch))


def submit_batch_in(ctx: ExperimentContext, batch: int) -> list[int]:
    """Ask the engine to train every trial of ``batch`` for the experiment's epochs."""
    trials = repo.get_trials(ctx.conn, ctx.experiment.id, batch=batch)
    if not trials:
        raise UserInputError(
            f"Batch {batch} of experiment {ctx.experiment.name!r} has no trials: propose it first."
        )
    epochs = ctx.request.epochs
    _submit(ctx, [repo.TrainingRequest(t.trial_id, epochs, batch=batch) for t in trials])
    return [t.trial_id for t in trials]


def complete_batch_in(ctx: ExperimentContext, batch: int) -> list[int]:
    """Mark the batch's trained trials completed; returns the batch's trial ids."""
    ids = [t.trial_id for t in repo.get_trials(ctx.conn, ctx.experiment.id, batch=batch)]
    _set_status_unless_failed(ctx, ids, repo.TrialState.COMPLETED)
    return ids


# --- requests -----------------------------------------------------------------------------


def _submit(ctx: ExperimentContext, requests: Sequence[repo.TrainingRequest]) -> None:
    """Queue the requests (idempotent). Torch-free on purpose: any process may submit, the
    triggerer included; the engine checks a configuration before it trains it
    (``TrainingEngine.claim``)."""
    repo.submit_requests(ctx.conn, ctx.experiment.id, requests)


def unfinished_trials(
    ctx: ExperimentContext,
    *,
    bracket: int | None = None,
    rung: int | None = None,
    batch: int | None = None,
) -> list[int]:
    """Trials whose request in the rung or batch is still queued or running."""
    rows = repo.get_requests(ctx.conn, ctx.experiment.id, bracket=bracket, rung=rung, batch=batch)
    return [r.trial_id for r in rows if r.state in repo.UNFINISHED_STATES]


def _set_status_unless_failed(
    ctx: ExperimentContext, trial_ids: list[int], status: repo.TrialState
) -> None:
    """Mark trials ``status``, keeping ``failed`` (a rejected configuration) as it is."""
    rows = repo.get_trials(ctx.conn, ctx.experiment.id, trial_ids=trial_ids)
    keep = [t.trial_id for t in rows if t.status != repo.TrialState.FAILED]
    repo.set_trial_status(ctx.conn, ctx.experiment.id, keep, status)


# --- one connection per call: what the Airflow tasks call ---------------------------------


def submit_rung(name: str, bracket: int, rung: int, *, db_url: str | None = None) -> list[int]:
    with open_experiment(name, db_url) as ctx:
        return submit_rung_in(ctx, bracket, rung)


def promote_rung(
    name: str, bracket: int, rung: int, *, db_url: str | None = None
) -> dict[str, Any]:
    with open_experiment(name, db_url) as ctx:
        return promote_rung_in(ctx, bracket, rung)


def propose_batch(name: str, batch: int, *, db_url: str | None = None) -> list[int]:
    with open_experiment(name, db_url) as ctx:
        return propose_batch_in(ctx, batch)


def submit_batch(name: str, batch: int, *, db_url: str | None = None) -> list[int]:
    with open_experiment(name, db_url) as ctx:
        return submit_batch_in(ctx, batch)


def complete_batch(name: str, batch: int, *, db_url: str | None = None) -> list[int]:
    with open_experiment(name, db_url) as ctx:
        return complete_batch_in(ctx, batch)
