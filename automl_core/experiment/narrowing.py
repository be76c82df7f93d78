"""A second round: a search on the space around an earlier experiment's best trials.

``narrow_experiment_in(conn, parent, top=K)`` reads the parent experiment's space (from
its stored spec) and its trials, takes the top K by the leaderboard's rule (best-epoch
validation accuracy; failed trials left out) and narrows the space to them
(``automl_core.space.narrow``). ``narrow_request`` gives a ``SearchRequest`` that
searches the narrowed space and names the parent (``experiments.parent_experiment``);
``parent_history`` is what Hyperopt's second round learns from before its first batch.

``automl space narrow``, ``automl run --narrow-from`` and the Airflow form's
``narrow_from`` all come here, so they narrow the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from automl_core.errors import SpaceTooSmallError, UserInputError
from automl_core.experiment.request import SearchRequest, check_limit
from automl_core.space import SearchSpace
from automl_core.space.narrow import DEFAULT_TOP, Change, ScoredTrial, narrow, top_trials
from automl_core.store import repository as repo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NarrowedSpace:
    """The space of a second round and where it came from.

    ``space`` is in ``SearchSpace.to_dict()`` form; ``trial_ids`` are the parent's
    trials it was narrowed to, best first (fewer than ``top`` when fewer had a result);
    ``changes`` has one entry per parameter of the parent's space.
    """

    parent: str
    top: int
    trial_ids: tuple[int, ...]
    space: dict[str, Any]
    changes: tuple[Change, ...]

    def summary(self) -> str:
        """One line: what the space was narrowed to."""
        if len(self.trial_ids) < self.top:
            return (
                f"Narrowed {self.parent!r} to all {len(self.trial_ids)} trials with a result "
                f"that did not fail (asked for the top {self.top}): trials "
                f"{list(self.trial_ids)}."
            )
        return f"Narrowed {self.parent!r} to its top {self.top} trials: {list(self.trial_ids)}."


def narrow_experiment_in(conn: Any, parent: str, *, top: int = DEFAULT_TOP) -> NarrowedSpace:
    """The parent experiment's space narrowed to its ``top`` best trials.

    Trials are ranked by best-epoch validation accuracy, ties by trial id (the
    leaderboard's rule); failed trials, trials with no validation result and (from an
    experiment older than a fix to its space's rules) configurations the space no longer
    holds are left out; when fewer than ``top`` remain, all of them are used. Raises
    ``UserInputError`` when ``top`` is out of ``LIMITS``, no experiment is called
    ``parent`` (the message lists those that are), or none of its trials has a result.
    """
    check_limit("top", top)
    experiment = repo.get_experiment(conn, parent)
    space = SearchSpace.from_dict(experiment.spec["space"])
    failed = {
        t.trial_id
        for t in repo.get_trials(conn, experiment.id)
        if t.status == repo.TrialState.FAILED
    }
    scored = [
        ScoredTrial(f.trial_id, f.config, f.best_valid_accuracy)
        for f in repo.finished_trials(conn, experiment.id)
        if f.trial_id not in failed and space.contains(f.config)
    ]
    best = top_trials(scored, top)
    if not best:
        raise UserInputError(
            f"Experiment {parent!r} has no trial with a validation result to narrow from "
            f"(status {experiment.status}): let it train at least one epoch, or narrow "
            "from another experiment (`automl leaderboard NAME` shows its results)."
        )
    narrowed = narrow(space, [t.config for t in best])
    return NarrowedSpace(
        parent=parent,
        top=top,
        trial_ids=tuple(t.trial_id for t in best),
        space=narrowed.space.to_dict(),
        changes=narrowed.changes,
    )


def narrow_request_in(
    conn: Any, request: SearchRequest, parent: str, *, top: int = DEFAULT_TOP
) -> tuple[SearchRequest, NarrowedSpace | None]:
    """``request`` searching ``parent``'s space narrowed to its ``top`` trials, with
    ``parent_experiment`` set; the request's own space is replaced.

    A request named like an experiment that was already narrowed from ``parent`` gets
    that experiment's stored space back (and None for the narrowing), so a rerun or a
    retried task resumes it even after the parent gained trials. Hyperopt's budget is
    checked against what the parent left: proposals never repeat a configuration the
    parent told it. Raises ``UserInputError`` as ``narrow_experiment_in`` does, and when
    the request names its own parent.
    """
    name = request.experiment_name()
    if name == parent:
        raise UserInputError(
            f"Experiment {name!r} cannot be narrowed from itself: give the new search another name."
        )
    try:
        existing: repo.Experiment | None = repo.get_experiment(conn, name)
    except UserInputError:  # a new experiment
        existing = None
    if existing is not None and existing.parent_experiment == parent:
        space = dict(existing.spec["space"])
        child = dataclasses.replace(request, space=space, parent_experiment=parent)
        from automl_core.experiment.api import experiment_definition

        # Other settings would be refused by create_experiment: say so before "resuming".
        repo.check_experiment_name(conn, **experiment_definition(child))
        log.info("experiment %s was narrowed from %s already: resuming it", name, parent)
        return child, None
    narrowed = narrow_experiment_in(conn, parent, top=top)
    child = dataclasses.replace(request, space=narrowed.space, parent_experiment=parent)
    try:
        child.validate()
        if child.method == "hyperopt":
            _check_hyperopt_room(conn, child)
    except SpaceTooSmallError as small:
        raise SpaceTooSmallError(
            f"{small} The space is {parent!r}'s narrowed to its top {top} trials: narrowing "
            "to more of them (--top, or narrow_top in a DAG run) keeps more of it."
        ) from None
    return child, narrowed


def narrow_experiment(
    parent: str, *, top: int = DEFAULT_TOP, db_url: str | None = None
) -> NarrowedSpace:
    """``narrow_experiment_in`` on a connection of its own (what ``automl space narrow``
    calls)."""
    from automl_core.experiment.api import connection_to_read

    with connection_to_read(parent, db_url) as conn:
        return narrow_experiment_in(conn, parent, top=top)


def narrow_request(
    request: SearchRequest, parent: str, *, top: int = DEFAULT_TOP, db_url: str | None = None
) -> tuple[SearchRequest, NarrowedSpace | None]:
    """``narrow_request_in`` on a connection of its own (what ``automl run --narrow-from``
    and the Airflow tasks call). It writes nothing, so ``validate_conf`` can call it
    before anything is written: a database without the automl schema has no ``parent``
    (UserInputError), and an existing schema is only brought up to date, as every step
    does."""
    from automl_core.experiment.api import connection_to_read

    with connection_to_read(parent, db_url) as conn:
        return narrow_request_in(conn, request, parent, top=top)


def _check_hyperopt_room(conn: Any, request: SearchRequest) -> None:
    """Refuse a finite narrowed space that the parent's told trials leave too small."""
    from automl_core.search.distinct import require_distinct

    assert request.parent_experiment is not None
    space = SearchSpace.from_dict(request.space)
    told = len(parent_history(conn, request.parent_experiment, space))
    total = request.batches * request.batch_size
    require_distinct(
        space,
        total + told,
        f"Hyperopt with {request.batches} batches of {request.batch_size} after the "
        f"{told} configurations of {request.parent_experiment!r} it learns from",
    )


def parent_history(
    conn: Any, parent: str, space: SearchSpace
) -> list[tuple[dict[str, Any], float | None]]:
    """The parent's trials that Hyperopt's second round learns from, by trial id.

    Only configurations inside ``space`` (the narrowed space) can be told to TPE. A
    trial with a result is told its best validation accuracy; a failed one is told as a
    failure (None); one that never trained and did not fail is left out.
    """
    experiment = repo.get_experiment(conn, parent)
    best = {f.trial_id: f.best_valid_accuracy for f in repo.finished_trials(conn, experiment.id)}
    history: list[tuple[dict[str, Any], float | None]] = []
    for trial in repo.get_trials(conn, experiment.id):
        if not space.contains(trial.config):
            continue
        if trial.status == repo.TrialState.FAILED:
            history.append((trial.config, None))
        elif best.get(trial.trial_id) is not None:
            history.append((trial.config, best[trial.trial_id]))
    return history
