"""The shape of a search and which trials each part holds, from the request alone.

``search_plan`` lists the groups of a search (a bracket per Hyperband bracket, a batch per
batch of the other methods), the rungs each one trains and which group must finish
before another starts. The DAG factory maps it to tasks and the engine's driver walks
it; neither holds search logic of its own.

Trial ids are fixed by position (bracket offsets, batch offsets), so brackets and
batches can be created in any order, concurrently, and again after a crash, without
two of them ever taking the same id.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from automl_core.experiment.request import SearchRequest
from automl_core.search.distinct import distinct_grid, distinct_grid_size, sample_distinct
from automl_core.search.hyperband import HyperbandSchedule, hyperband_schedule, sample_bracket
from automl_core.space import SearchSpace

Config = dict[str, Any]


@dataclass(frozen=True)
class RungStep:
    """Train ``n`` trials to ``target_epoch`` epochs in total (rung ``rung`` of a group)."""

    rung: int
    n: int
    target_epoch: int


@dataclass(frozen=True)
class PlanGroup:
    """A bracket (Hyperband: rungs with a promotion after each) or a batch (one rung).

    ``after`` is the index of the group that must complete before this one is proposed
    (Hyperopt learns from every earlier batch); None when it can start at once.
    """

    kind: Literal["bracket", "batch"]
    index: int
    rungs: tuple[RungStep, ...]
    after: int | None = None

    @property
    def group_id(self) -> str:
        return f"{self.kind}_{self.index}"

    @property
    def promotes(self) -> bool:
        """True when survivors are picked between rungs (Hyperband brackets)."""
        return self.kind == "bracket"


@dataclass(frozen=True)
class SearchPlan:
    """Every group of one search, in the order they are listed to a user."""

    method: str
    groups: tuple[PlanGroup, ...]

    def group(self, kind: str, index: int) -> PlanGroup:
        for g in self.groups:
            if g.kind == kind and g.index == index:
                return g
        raise KeyError(f"{kind} {index} is not in this search's plan")


def search_plan(request: SearchRequest) -> SearchPlan:
    """The groups of the search ``request`` describes (pure: no database, no torch)."""
    if request.method == "hyperband":
        groups = tuple(
            PlanGroup(
                "bracket",
                b.s,
                tuple(RungStep(r.i, r.n_i, r.r_i) for r in b.rungs),
            )
            for b in schedule_of(request).brackets
        )
        return SearchPlan(request.method, groups)
    from automl_core.experiment.request import batch_count

    sequential = request.method == "hyperopt"
    count = batch_count(request)
    sizes = _batch_sizes(request, count)
    groups = tuple(
        PlanGroup(
            "batch",
            b,
            (RungStep(0, sizes[b], request.epochs),),
            after=b - 1 if sequential and b > 0 else None,
        )
        for b in range(count)
    )
    return SearchPlan(request.method, groups)


def _batch_sizes(request: SearchRequest, count: int) -> list[int]:
    if request.method == "hyperopt":
        return [request.batch_size] * count
    total = request.n if request.method == "random" else _grid_size(request)
    return [len(batch_ids(request, b, total)) for b in range(count)]


def _grid_size(request: SearchRequest) -> int:
    return distinct_grid_size(SearchSpace.from_dict(request.space))


def schedule_of(request: SearchRequest) -> HyperbandSchedule:
    return hyperband_schedule(request.R, request.eta, request.skip_last)


def bracket_offset(schedule: HyperbandSchedule, bracket: int) -> int:
    """The first trial id of ``bracket``: brackets are numbered in schedule order."""
    offset = 0
    for b in schedule.brackets:
        if b.s == bracket:
            return offset
        offset += b.rungs[0].n_i
    raise KeyError(f"bracket {bracket} is not in this schedule")


def bracket_trials(request: SearchRequest, bracket: int) -> list[tuple[int, Config]]:
    """Rung 0 of ``bracket``: its trial ids and sampled configurations."""
    schedule = schedule_of(request)
    first = bracket_offset(schedule, bracket)  # KeyError for a bracket not in the schedule
    space = SearchSpace.from_dict(request.space)
    configs = sample_bracket(space, schedule, bracket, request.seed)
    return [(first + j, c) for j, c in enumerate(configs)]


def batch_ids(request: SearchRequest, batch: int, total: int) -> range:
    start = batch * request.batch_size
    return range(start, min(start + request.batch_size, total))


def grid_batch(request: SearchRequest, batch: int) -> list[tuple[int, Config]]:
    space = SearchSpace.from_dict(request.space)
    ids = batch_ids(request, batch, distinct_grid_size(space))
    configs = itertools.islice(distinct_grid(space), ids.start, ids.stop)
    return list(zip(ids, configs, strict=True))


def random_batch(request: SearchRequest, batch: int) -> list[tuple[int, Config]]:
    space = SearchSpace.from_dict(request.space)
    rng = np.random.default_rng(request.seed)
    # Draw all n in order, then slice: batch b is the same whichever batch ran first.
    configs = sample_distinct(space, request.n, rng)
    ids = batch_ids(request, batch, request.n)
    return [(i, configs[i]) for i in ids]


def hyperopt_batch(
    request: SearchRequest, batch: int, history: Sequence[tuple[dict[str, Any], float | None]]
) -> list[tuple[int, Config]]:
    """Batch ``batch`` proposed by TPE from ``history`` (configs of earlier batches, metric)."""
    from automl_core.search.hyperopt_search import HyperoptSearch, startup_trials

    space = SearchSpace.from_dict(request.space)
    startup = startup_trials(request.startup_trials, request.batches * request.batch_size)
    search = HyperoptSearch.from_history(
        space, history, seed=request.seed + batch, n_startup_jobs=startup
    )
    configs = search.ask_batch(request.batch_size)
    start = batch * request.batch_size
    return [(start + j, c) for j, c in enumerate(configs)]
