"""Which trials a bracket or a batch holds: deterministic from the experiment's seed.

Trial ids are fixed by position (bracket offsets, batch offsets), so brackets and
batches can be created in any order, concurrently, and again after a crash, without
two of them ever taking the same id.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from automl_core.experiment.request import SearchRequest
from automl_core.search.hyperband import HyperbandSchedule, hyperband_schedule, sample_bracket
from automl_core.space import SearchSpace

Config = dict[str, Any]


def schedule_of(request: SearchRequest) -> HyperbandSchedule:
    return hyperband_schedule(request.R, request.eta, request.skip_last)


def bracket_offset(schedule: HyperbandSchedule, bracket: int) -> int:
    """The first trial id of ``bracket``: brackets are numbered in schedule order."""
    offset = 0
    for b in schedule.brackets:
        if b.s == bracket:
            return offset
        offset += b.rungs[0].n_i
    raise KeyError(bracket)


def bracket_of(schedule: HyperbandSchedule, bracket: int) -> Any:
    for b in schedule.brackets:
        if b.s == bracket:
            return b
    valid = ", ".join(str(b.s) for b in schedule.brackets)
    raise ValueError(f"bracket {bracket} is not in this schedule (brackets: {valid})")


def bracket_trials(request: SearchRequest, bracket: int) -> list[tuple[int, Config]]:
    """Rung 0 of ``bracket``: its trial ids and sampled configurations."""
    schedule = schedule_of(request)
    bracket_of(schedule, bracket)
    space = SearchSpace.from_dict(request.space)
    configs = sample_bracket(space, schedule, bracket, request.seed)
    first = bracket_offset(schedule, bracket)
    return [(first + j, c) for j, c in enumerate(configs)]


def batch_ids(request: SearchRequest, batch: int, total: int) -> range:
    start = batch * request.batch_size
    return range(start, min(start + request.batch_size, total))


def grid_batch(request: SearchRequest, batch: int) -> list[tuple[int, Config]]:
    space = SearchSpace.from_dict(request.space)
    ids = batch_ids(request, batch, space.grid_size())
    configs = itertools.islice(space.grid(), ids.start, ids.stop)
    return list(zip(ids, configs, strict=True))


def random_batch(request: SearchRequest, batch: int) -> list[tuple[int, Config]]:
    space = SearchSpace.from_dict(request.space)
    rng = np.random.default_rng(request.seed)
    # Draw all n in order, then slice: batch b is the same whichever batch ran first.
    configs = [space.sample(rng) for _ in range(request.n)]
    ids = batch_ids(request, batch, request.n)
    return [(i, configs[i]) for i in ids]


def hyperopt_batch(
    request: SearchRequest, batch: int, history: Sequence[tuple[dict[str, Any], float | None]]
) -> list[tuple[int, Config]]:
    """Batch ``batch`` proposed by TPE from ``history`` (configs of earlier batches, metric)."""
    from automl_core.search.hyperopt_search import HyperoptSearch

    space = SearchSpace.from_dict(request.space)
    search = HyperoptSearch.from_history(space, history, seed=request.seed + batch)
    configs = search.ask_batch(request.batch_size)
    start = batch * request.batch_size
    return [(start + j, c) for j, c in enumerate(configs)]
