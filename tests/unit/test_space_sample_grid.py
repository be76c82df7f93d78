"""Random sampling and grid enumeration of search spaces."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automl_core.errors import UserInputError
from automl_core.search.distinct import distinct_points
from automl_core.space import SearchSpace

CONDITIONAL: dict[str, Any] = {
    "architecture": [
        {
            "architecture": "mlp",
            "hidden": [64, 128, 256],
            "depth": [1, 2],
            "dropout": {"uniform": [0, 0.3]},
        },
        {"architecture": "cnn2d", "channels": [16, 32], "kernel_size": 3},
    ],
    "optimizer": [
        {"optimizer": "sgd", "momentum": {"uniform": [0.8, 0.95]}, "nesterov": [True, False]},
        {"optimizer": "adam"},
        {"optimizer": "adamw", "weight_decay": {"loguniform": [1e-5, 1e-2]}},
    ],
    "lr": {"loguniform": [1e-3, 3e-2]},
    "batch_size": {"quniform": [16, 128, 16]},
    "depth_extra": {"randint": [0, 3]},
    "beta": {"log_near_one": [0.9, 0.999]},
}

GRID: dict[str, Any] = {
    "architecture": [
        {"architecture": "mlp", "hidden": [64, 128], "depth": {"randint": [1, 3]}},
        {"architecture": "cnn2d", "channels": 16},
    ],
    "optimizer": [{"optimizer": "sgd", "nesterov": [True, False]}, {"optimizer": "adam"}],
    "lr": [0.001, 0.01],
    "batch_size": 32,
}


def _plain(value: object) -> bool:
    return value is None or type(value) in (str, int, float, bool)


def test_samples_are_flat_plain_and_inside_the_space() -> None:
    space = SearchSpace.from_dict(CONDITIONAL)
    rng = np.random.default_rng(0)
    seen_archs = set()
    for _ in range(200):
        config = space.sample(rng)
        assert all(_plain(v) for v in config.values()), config
        assert "optimizer" in config and "architecture" in config
        assert type(config["batch_size"]) is int and config["batch_size"] % 16 == 0
        assert type(config["depth_extra"]) is int and 0 <= config["depth_extra"] < 3
        assert 1e-3 <= config["lr"] <= 3e-2
        assert 0.9 <= config["beta"] <= 0.999
        assert ("momentum" in config) == (config["optimizer"] == "sgd")
        assert ("weight_decay" in config) == (config["optimizer"] == "adamw")
        assert ("hidden" in config) == (config["architecture"] == "mlp")
        assert space.contains(config)
        json.dumps(config)
        seen_archs.add(config["architecture"])
    assert seen_archs == {"mlp", "cnn2d"}


def test_sampling_is_reproducible_from_the_seed() -> None:
    space = SearchSpace.from_dict(CONDITIONAL)
    first = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    again = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    other = [space.sample(np.random.default_rng(8)) for _ in range(3)]
    assert first == again
    assert first != other


def test_quantized_float_bounds_give_floats() -> None:
    space = SearchSpace.from_dict({"x": {"quniform": [0.0, 1.0, 0.25]}})
    values = {space.sample(np.random.default_rng(i))["x"] for i in range(50)}
    assert values <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert all(type(v) is float for v in values)


def test_log_near_one_matches_madlibs_formula() -> None:
    # MADlib: 1 - 10 ** uniform(log10(1 - high), log10(1 - low)).
    space = SearchSpace.from_dict({"m": {"log_near_one": [0.9, 0.999]}})
    got = space.sample(np.random.default_rng(3))["m"]
    exponent = np.random.default_rng(3).uniform(np.log10(1 - 0.999), np.log10(1 - 0.9))
    assert got == pytest.approx(1 - 10**exponent, rel=1e-12)


def test_grid_size_counts_conditional_options_without_expanding() -> None:
    space = SearchSpace.from_dict(GRID)
    # architecture: mlp 2 hidden x 2 depths + cnn 1 = 5; optimizer: 2 + 1 = 3; lr 2.
    assert space.is_discrete
    assert space.grid_size() == 5 * 3 * 2
    grid = list(space.grid())
    assert len(grid) == space.grid_size()
    assert len({json.dumps(c, sort_keys=True) for c in grid}) == len(grid)
    assert all(space.contains(c) for c in grid)


def test_grid_order_is_deterministic_first_parameter_slowest() -> None:
    space = SearchSpace.from_dict({"a": [1, 2], "g": [{"b": "x"}, {"b": "y", "c": [True, False]}]})
    assert list(space.grid()) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y", "c": True},
        {"a": 1, "b": "y", "c": False},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y", "c": True},
        {"a": 2, "b": "y", "c": False},
    ]


def test_grid_over_a_range_names_the_parameter_and_the_fix() -> None:
    space = SearchSpace.from_dict(CONDITIONAL)
    assert not space.is_discrete
    for call in (space.grid_size, space.grid):
        with pytest.raises(UserInputError) as info:
            call()
        message = str(info.value)
        assert "'dropout'" in message and "random or hyperopt" in message


def test_quantized_range_is_not_a_grid() -> None:
    with pytest.raises(UserInputError, match="'bs'"):
        SearchSpace.from_dict({"bs": {"quniform": [16, 64, 16]}}).grid_size()


# Random discrete (possibly nested) specs: grid_size() must equal the enumeration.
_values = st.lists(st.integers(0, 5), min_size=1, max_size=3)


@st.composite
def _discrete_spec(draw: st.DrawFn, prefix: str = "p", depth: int = 0) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    spec: dict[str, Any] = {}
    for i in range(n):
        name = f"{prefix}{i}"  # unique along every path, so no two parameters collide
        kinds = ["fixed", "choice", "randint", "group"] if depth < 2 else ["fixed", "choice"]
        kind = draw(st.sampled_from(kinds))
        if kind == "fixed":
            spec[name] = draw(st.integers(0, 9))
        elif kind == "choice":
            spec[name] = draw(_values)
        elif kind == "randint":
            low = draw(st.integers(0, 3))
            spec[name] = {"randint": [low, low + draw(st.integers(1, 3))]}
        else:
            options = draw(st.integers(1, 3))
            spec[name] = [draw(_discrete_spec(f"{name}_", depth + 1)) for _ in range(options)]
    return spec


@settings(max_examples=60, deadline=None)
@given(_discrete_spec())
def test_grid_size_equals_enumeration_for_random_specs(spec: dict[str, Any]) -> None:
    space = SearchSpace.from_dict(spec)
    grid = list(space.grid())
    assert space.grid_size() == len(grid)
    assert all(space.contains(c) for c in grid)


@settings(max_examples=200, deadline=None)
@given(
    low=st.integers(min_value=0, max_value=500),
    width=st.integers(min_value=1, max_value=600),
    q=st.integers(min_value=1, max_value=128),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_quantized_value_lies_within_its_bounds(
    low: int, width: int, q: int, seed: int
) -> None:
    high = low + width
    if -(-low // q) * q > high:  # no multiple of q inside: the parser refuses it
        with pytest.raises(UserInputError, match="no multiple of q"):
            SearchSpace.from_dict({"batch_size": {"quniform": [low, high, q]}})
        return
    space = SearchSpace.from_dict({"batch_size": {"quniform": [low, high, q]}})
    rng = np.random.default_rng(seed)
    for _ in range(20):
        value = space.sample(rng)["batch_size"]
        assert low <= value <= high and value % q == 0


@pytest.mark.parametrize(
    ("low", "high", "q"),
    [(0.1, 0.7, 0.1), (0.0, 0.6, 0.1), (0.15, 0.35, 0.05), (0.07, 0.2, 0.01), (0.2, 0.6, 0.2)],
)
def test_a_quantized_float_range_gives_both_bounds(low: float, high: float, q: float) -> None:
    # In floats 0.7 / 0.1 is 6.999999999999999 and 0.07 / 0.01 is 7.000000000000001:
    # flooring and ceiling those left the bound out, which hyperopt's round(x / q) * q
    # gives (the parser and the count of distinct configurations take the same values).
    space = SearchSpace.from_dict({"x": {"quniform": [low, high, q]}})
    rng = np.random.default_rng(0)
    values = {space.sample(rng)["x"] for _ in range(3000)}
    assert min(values) == pytest.approx(low) and max(values) == pytest.approx(high)
    points = distinct_points(space, 1000)
    assert points is not None and len(points) == len(values) == round((high - low) / q) + 1
    one = SearchSpace.from_dict({"x": {"quniform": [0.69, 0.71, 0.1]}})
    assert distinct_points(one, 10) == [{"x": pytest.approx(0.7)}]


def test_a_batch_size_range_never_samples_zero() -> None:
    space = SearchSpace.from_dict({"batch_size": {"quniform": [16, 512, 64]}})
    rng = np.random.default_rng(0)
    values = {space.sample(rng)["batch_size"] for _ in range(500)}
    assert min(values) == 64 and max(values) == 512
