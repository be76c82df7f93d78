"""No search proposes a configuration twice, and every value stays in its range.

Properties over many random spaces (choices with repeated values, integer and quantized
ranges, conditionals whose options coincide, continuous ranges) and seeds, for every
method: grid, random (the plan's batches and ``RandomSearch``), Hyperband brackets and
Hyperopt batches (random start-up and TPE). A space too small for what a search asks is
refused by ``SearchRequest.validate``, before anything is written.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automl_core.errors import UserInputError
from automl_core.experiment.plan import group_trials, search_plan
from automl_core.experiment.request import SearchRequest
from automl_core.search import GridSearch, HyperoptSearch, RandomSearch
from automl_core.search.distinct import (
    config_key,
    distinct_grid_size,
    distinct_points,
    sample_distinct,
)
from automl_core.search.hyperband import hyperband_schedule, sample_bracket
from automl_core.space import SearchSpace

Config = dict[str, Any]


def _keys(configs: list[Config]) -> list[Any]:
    return [config_key(c) for c in configs]


def assert_distinct(configs: list[Config], before: list[Config] = ()) -> None:  # type: ignore[assignment]
    keys = _keys(configs)
    assert len(set(keys)) == len(keys), f"a repeat in {configs}"
    assert not set(keys) & set(_keys(list(before))), "a repeat of an earlier configuration"


# --- random spaces ----------------------------------------------------------------------


@st.composite
def _param(draw: st.DrawFn, finite: bool) -> Any:
    kinds = ["choice", "randint", "quniform", "fixed"] + ([] if finite else ["uniform"])
    kind = draw(st.sampled_from(kinds))
    if kind == "choice":  # repeats on purpose: [32, 32, 64]
        return draw(st.lists(st.sampled_from([8, 16, 32, 64, 128]), min_size=2, max_size=5))
    if kind == "randint":
        low = draw(st.integers(0, 5))
        return {"randint": [low, low + draw(st.integers(1, 4))]}
    if kind == "quniform":
        q = draw(st.sampled_from([1, 4, 16, 64]))
        low = draw(st.integers(0, 100))
        return {"quniform": [low, low + q * draw(st.integers(1, 4)) + draw(st.integers(0, 3)), q]}
    if kind == "fixed":
        return draw(st.sampled_from(["adam", 3, 0.5]))
    low = draw(st.floats(0.0, 1.0))
    return {"uniform": [low, low + 1.0]}


@st.composite
def spaces(draw: st.DrawFn, finite: bool = True) -> SearchSpace:
    spec: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 3))):
        spec[f"p{i}"] = draw(_param(finite))
    if draw(st.booleans()):
        option = {"architecture": "mlp", "hidden": draw(_param(finite))}
        # Two identical options expand to the same configurations: a repeat to drop.
        other = dict(option) if draw(st.booleans()) else {"architecture": "cnn1d"}
        spec["arch"] = [option, other]
    return SearchSpace.from_dict(spec)


def _size(space: SearchSpace) -> int | None:
    points = distinct_points(space, 5000)
    return None if points is None else len(points)


# --- grid -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(spaces(finite=True), st.integers(1, 6))
def test_grid_batches_hold_each_distinct_configuration_once(space: SearchSpace, k: int) -> None:
    if not space.is_discrete:  # quantized ranges are finite but not a grid
        return
    request = SearchRequest(dataset="d", space=space.to_dict(), method="grid", batch_size=k)
    batches = [group_trials(request, g) for g in search_plan(request).groups]
    configs = [c for batch in batches for _, c in batch]
    assert_distinct(configs)
    assert {config_key(c) for c in configs} == {config_key(c) for c in space.grid()}
    assert len(configs) == distinct_grid_size(space) == _size(space)
    assert sum(g.rungs[0].n for g in search_plan(request).groups) == len(configs)
    assert [i for batch in batches for i, _ in batch] == list(range(len(configs)))


def test_a_repeated_value_is_trained_once() -> None:
    space = SearchSpace.from_dict({"batch_size": [32, 32, 64], "lr": [0.1]})
    search = GridSearch(space)
    assert search.size == 2
    assert [search.ask(), search.ask(), search.ask()] == [
        {"batch_size": 32, "lr": 0.1},
        {"batch_size": 64, "lr": 0.1},
        None,
    ]
    request = SearchRequest(dataset="d", space=space.to_dict(), method="grid", batch_size=1)
    assert len(search_plan(request).groups) == 2


def test_ints_equal_to_floats_are_the_same_but_booleans_are_not() -> None:
    assert config_key({"a": 1, "b": "x"}) == config_key({"b": "x", "a": 1.0})
    assert config_key({"a": True}) != config_key({"a": 1})
    assert config_key({"a": None}) != config_key({"a": 0})


# --- random ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spaces(finite=False), st.integers(0, 2**31 - 1), st.integers(1, 40), st.integers(1, 7))
def test_random_batches_never_repeat_and_stay_in_range(
    space: SearchSpace, seed: int, n: int, k: int
) -> None:
    size = _size(space)
    n = n if size is None else min(n, size)
    request = SearchRequest(dataset="d", space=space.to_dict(), method="random", n=n, seed=seed,
                            batch_size=k)  # fmt: skip
    request.validate()
    configs = [c for g in search_plan(request).groups for _, c in group_trials(request, g)]
    assert len(configs) == n
    assert_distinct(configs)
    assert all(space.contains(c) for c in configs)
    # The searcher object keeps the same rule.
    search = RandomSearch(space, n, np.random.default_rng(seed))
    asked = [search.ask() for _ in range(n)]
    assert_distinct(asked)  # type: ignore[arg-type]
    assert search.ask() is None


def test_sampling_an_almost_exhausted_space_takes_what_is_left() -> None:
    # 3 x 4 points, all asked for: the last ones are found from the enumerated remainder
    # instead of by waiting on a lucky draw.
    space = SearchSpace.from_dict({"a": {"randint": [0, 3]}, "b": {"quniform": [16, 64, 16]}})
    configs = sample_distinct(space, 12, np.random.default_rng(0))
    assert_distinct(configs)
    assert {(c["a"], c["b"]) for c in configs} == set(itertools.product(range(3), [16, 32, 48, 64]))
    with pytest.raises(UserInputError, match="only 0 distinct"):
        sample_distinct(space, 1, np.random.default_rng(0), exclude=configs)


# --- Hyperband ------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(spaces(finite=False), st.integers(0, 2**31 - 1), st.sampled_from([(3, 3), (9, 3), (8, 2)]))
def test_no_configuration_is_in_two_brackets(
    space: SearchSpace, seed: int, r_eta: tuple[int, int]
) -> None:
    schedule = hyperband_schedule(*r_eta)
    size = _size(space)
    request = SearchRequest(dataset="d", space=space.to_dict(), method="hyperband",
                            R=r_eta[0], eta=r_eta[1], seed=seed)  # fmt: skip
    if size is not None and size < schedule.n_configs:
        with pytest.raises(UserInputError, match="distinct configuration"):
            request.validate()
        return
    request.validate()
    configs: list[Config] = []
    for bracket in reversed(schedule.brackets):  # any order gives the same brackets
        drawn = sample_bracket(space, schedule, bracket.s, seed)
        assert len(drawn) == bracket.n
        assert all(space.contains(c) for c in drawn)
        configs.extend(drawn)
    assert_distinct(configs)


# --- Hyperopt -------------------------------------------------------------------------


def _score(config: Config) -> float:
    return float(sum(v for v in config.values() if isinstance(v, int | float)) % 7) / 7


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spaces(finite=False), st.integers(0, 2**31 - 1), st.integers(1, 4))
def test_hyperopt_batches_repeat_neither_history_nor_each_other(
    space: SearchSpace, seed: int, k: int
) -> None:
    size = _size(space)
    batches = 3 if size is None else min(3, size // k)
    if batches == 0:
        return
    search = HyperoptSearch(space, seed, n_startup_jobs=k)  # TPE from the second batch on
    for _ in range(batches):
        batch = search.ask_batch(k)
        assert_distinct(batch, [c for c, _ in search.history])
        assert all(space.contains(c) for c in batch)
        for config in batch:
            search.tell(config, _score(config))


@pytest.mark.parametrize("seed", range(6))
def test_tpe_does_not_repeat_a_value_in_a_small_choice(seed: int) -> None:
    # The case: a 6-value choice with 3 values tried; TPE's batches were like
    # [32, 32, 512] whatever the seed.
    space = SearchSpace.from_dict({"batch_size": [16, 32, 64, 128, 256, 512]})
    history = [({"batch_size": 32}, 0.9), ({"batch_size": 128}, 0.7), ({"batch_size": 512}, 0.8)]
    search = HyperoptSearch.from_history(space, history, seed=seed, n_startup_jobs=3)
    assert search.uses_tpe
    batch = search.ask_batch(3)
    assert_distinct(batch, [c for c, _ in history])
    assert {c["batch_size"] for c in batch} == {16, 64, 256}


# --- asking for more than the space holds -------------------------------------------


SMALL = {"lr": [0.1, 0.01], "batch_size": [32, 32, 64]}  # 4 distinct configurations


@pytest.mark.parametrize(
    ("budget", "fragment"),
    [
        ({"method": "random", "n": 5}, "random search with n=5"),
        ({"method": "hyperopt", "batches": 3, "batch_size": 2}, "3 batches of 2"),
        ({"method": "hyperband", "R": 3, "eta": 3}, "R=3, eta=3"),
    ],
)
def test_a_space_smaller_than_the_budget_is_refused(budget: dict[str, Any], fragment: str) -> None:
    request = SearchRequest(dataset="d", space=SMALL, **budget)
    with pytest.raises(UserInputError, match=f"has 4 distinct configurations.*{fragment}"):
        request.validate()


def test_a_space_that_fits_is_accepted() -> None:
    SearchRequest(dataset="d", space=SMALL, method="random", n=4).validate()
    SearchRequest(dataset="d", space=SMALL, method="grid").validate()
    continuous = dict(SMALL, lr={"loguniform": [1e-3, 1e-1]})
    SearchRequest(dataset="d", space=continuous, method="random", n=500).validate()
