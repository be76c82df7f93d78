"""The shape of a search and which trials each part holds, from the request alone.

``search_plan`` lists the groups of a search (a bracket per Hyperband bracket, a batch per
batch of the other methods), the rungs each one trains and which group must finish
before another starts; ``group_trials`` the trials a group starts with. Both ask the
request's method (``automl_core.search.methods``); the DAG factory maps the plan to
tasks and the engine's driver walks it; neither holds search logic of its own.

Trial ids are fixed by position (bracket offsets, batch offsets), so brackets and
batches can be created in any order, concurrently, and again after a crash, without
two of them ever taking the same id.
"""

from __future__ import annotations

from collections.abc import Sequence

from automl_core.experiment.request import SearchRequest
from automl_core.search.groups import PlanGroup, RungStep, SearchPlan
from automl_core.search.methods import Config, History, Setup, get_method
from automl_core.space import SearchSpace

__all__ = [
    "Config",
    "PlanGroup",
    "RungStep",
    "SearchPlan",
    "group_trials",
    "no_history",
    "search_plan",
    "setup_of",
]


def setup_of(request: SearchRequest) -> Setup:
    """What the request's method plans and proposes from."""
    return Setup(SearchSpace.from_dict(request.space), request.budget(), request.seed)


def search_plan(request: SearchRequest) -> SearchPlan:
    """The groups of the search ``request`` describes (pure: no database, no torch)."""
    return SearchPlan(request.method, get_method(request.method).plan(setup_of(request)))


def no_history(first: int) -> Sequence[tuple[Config, float | None]]:
    """No told trials (a method that needs them proposes from random start-up trials)."""
    return ()


def group_trials(
    request: SearchRequest, group: PlanGroup, history: History = no_history
) -> list[tuple[int, Config]]:
    """``(trial_id, config)`` of the trials ``group`` starts with (its rung 0).

    ``history(first)`` gives the told trials with ids below ``first`` (``api`` reads them
    from the database); only a method that learns from results calls it.
    """
    return get_method(request.method).propose(setup_of(request), group, history)
