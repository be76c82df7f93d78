"""Sizes a search may ask for: the built-in architectures' integers (``hidden``,
``channels``, ...) and a grid's number of configurations are held to stated limits
before an experiment is written, and a large grid is proposed in linear time."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from automl_core.errors import UserInputError
from automl_core.experiment.request import LIMITS, SearchRequest
from automl_core.search import GridSearch
from automl_core.search.methods import MAX_GRID_SIZE, Setup, get_method
from automl_core.space import SearchSpace
from automl_core.training import build_model, register_architecture, unregister_architecture
from automl_core.training.engine import validate_config
from automl_core.training.params import IntParam
from automl_core.training.registry import declared_param


def validate(space: dict[str, Any], method: str = "random", **budget: Any) -> None:
    SearchRequest(dataset="d", space=space, method=method, **budget).validate()


# --- the architectures' sizes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ({"hidden": {"randint": [1, 1_000_000_000_000]}}, r"'hidden'.*must be <= 16384"),
        ({"hidden": 1e300}, r"'hidden': The value of 'hidden' is 1e\+300, but must be <= 16384"),
        ({"hidden": [64, 10**30]}, r"'hidden' is 10{30}, but must be <= 16384"),
        ({"hidden": {"randint": [1, 10**400]}}, r"'hidden': randint bounds must be finite"),
        ({"hidden": {"uniform": [1, 1e12]}}, r"'hidden' \(uniform.*must be <= 16384"),
        ({"hidden": {"quniform": [1, 1e300, 0.5]}}, r"'hidden'.*must be <= 16384"),
        ({"hidden": {"quniform": [1, 1e308, 0.5]}}, r"'hidden'.*more multiples of q"),
        ({"depth": {"qloguniform": [1, 1e300, 1]}}, r"'depth'.*must be <= 256"),
        ({"architecture": "cnn2d", "channels": 10**9}, r"'channels'.*<= 1024"),
        ({"kernel_size": [3, 1e300]}, r"'kernel_size'.*<= 128"),
        ({"blocks": {"randint": [1, 10**6]}}, r"'blocks'.*<= 256"),
        ({"o": [{"architecture": "mlp", "hidden": 1e300}]}, r"'o/0/hidden'.*<= 16384"),
    ],
)
@pytest.mark.parametrize("method", ["random", "grid"])
def test_a_size_past_its_maximum_is_refused_before_anything_is_written(
    space: dict[str, Any], match: str, method: str
) -> None:
    # validate() is what runs before the experiment row is written; an OverflowError or
    # torch's RuntimeError would escape pytest.raises and fail the test.
    with pytest.raises(UserInputError, match=match):
        validate(space, method, n=1)


def test_a_number_past_float_range_is_a_user_error_not_an_overflow() -> None:
    with pytest.raises(UserInputError, match=r"^Parameter 'lr': quniform .* more multiples"):
        validate({"batch_size": [8], "lr": {"quniform": [0.1, 1e308, 0.5]}}, n=1)
    with pytest.raises(
        UserInputError, match=r"^Parameter 'x' \(in option 1 of 'o'\): randint bounds"
    ):
        validate({"o": [{"momentum": 0.9}, {"x": {"randint": [0, 10**400]}}]}, n=1)


def test_every_size_at_its_maximum_is_accepted() -> None:
    # Below a minimum or of the wrong type is left to the builder, per trial, as before:
    # a user's architecture may read the same key.
    validate({"hidden": ["adam", 0, 0.5], "depth": {"uniform": [-1, 2]}}, n=1)
    validate({"architecture": "mlp", "hidden": {"randint": [1, 16_385]}, "depth": [0, 256]})
    validate({"architecture": "cnn2d", "channels": 1024, "kernel_size": 128, "depth": 256}, n=1)
    validate({"architecture": "resnet", "channels": 512, "blocks": 256}, n=1)
    validate({"hidden": {"quniform": [16, 16_384, 16]}, "lr": {"uniform": [0.01, 0.1]}})


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"architecture": "mlp", "hidden": 16_385}, "'hidden' is 16385, but must be <= 16384"),
        ({"architecture": "mlp", "hidden": 1e300}, "'hidden' is 1e\\+300"),
        ({"architecture": "mlp", "depth": 257}, "'depth' is 257, but must be <= 256"),
        ({"architecture": "cnn2d", "channels": 1025}, "'channels' is 1025, but must be <= 1024"),
        ({"architecture": "cnn2d", "kernel_size": 129}, "'kernel_size' is 129, but must be <="),
        ({"architecture": "resnet", "channels": 513}, "'channels' is 513, but must be <= 512"),
        ({"architecture": "resnet", "blocks": 257}, "'blocks' is 257, but must be <= 256"),
    ],
)
def test_the_builders_read_the_same_limits(config: dict[str, Any], match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        validate_config(config, (3, 256, 256), 3)
    with pytest.raises(UserInputError, match=match):
        build_model(config, (3, 256, 256), 3)


def test_declarations_of_one_key_merge_and_a_user_architecture_can_widen_them() -> None:
    assert declared_param("depth") == IntParam("depth", 2, 0, 256)  # mlp 0.., cnn 1..
    assert declared_param("channels") == IntParam("channels", 32, 1, 1024)
    assert declared_param("lr") is None
    with pytest.raises(TypeError, match="must be IntParam"):
        register_architecture("test_wide", params=(("hidden", 1, 1, 10),))  # type: ignore[arg-type]

    @register_architecture("test_wide", params=(IntParam("hidden", 8, 1, 100_000),))
    def build(config: Any, input_shape: tuple[int, ...], num_classes: int) -> Any:
        raise AssertionError("not built here")

    try:
        assert declared_param("hidden") == IntParam("hidden", 128, 1, 100_000)
        validate({"architecture": "test_wide", "hidden": 100_000}, n=1)
    finally:
        unregister_architecture("test_wide")
    with pytest.raises(UserInputError, match="<= 16384"):
        validate({"architecture": "mlp", "hidden": 100_000}, n=1)


# --- the grid's size ----------------------------------------------------------------------


@pytest.fixture
def no_enumeration(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: SearchSpace) -> Iterator[dict[str, Any]]:
        raise AssertionError("the grid was enumerated")

    monkeypatch.setattr(SearchSpace, "grid", refuse)


def test_the_grid_limit_is_in_the_shared_limits_table() -> None:
    assert LIMITS["grid_size"] == (1, MAX_GRID_SIZE) == (1, 100_000)


@pytest.mark.usefixtures("no_enumeration")
def test_a_grid_past_the_limit_is_refused_by_its_count_without_enumerating() -> None:
    space = {f"p{i}": list(range(1000)) for i in range(8)}
    with pytest.raises(UserInputError) as info:
        validate(space, "grid", batch_size=1)
    message = str(info.value)
    assert "The grid has 1,000,000,000,000,000,000,000,000 configurations" in message
    assert "at most 100,000" in message
    assert "list fewer values, or use --method random or hyperopt" in message


@pytest.mark.usefixtures("no_enumeration")
def test_conditional_options_count_towards_the_grid_limit() -> None:
    # (1,000 + 1,000 x 1,000) x 2: conditionals can repeat, which used to walk the grid.
    space = {"o": [{"a": list(range(1000))}, {"b": list(range(1000)), "c": list(range(1000))}]}
    with pytest.raises(UserInputError, match=r"has 2,002,000 configurations \('o': 1,001,000"):
        validate({**space, "lr": [0.1, 0.2]}, "grid")
    with pytest.raises(UserInputError, match="has 1,000,000,000 configurations"):
        validate({"hidden": {"randint": [1, 10_001]}, "x": {"randint": [0, 100_000]}}, "grid")


def test_a_grid_at_the_limit_is_accepted() -> None:
    validate({"a": list(range(100)), "b": list(range(1000))}, "grid")


def test_proposing_every_batch_of_a_large_grid_walks_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 20,000 batches of one: walking to each batch's offset made 200 million configs.
    size = 20_000
    space = SearchSpace.from_dict({"a": list(range(100)), "b": list(range(size // 100))})
    walked = 0
    grid = SearchSpace.grid

    def counting(self: SearchSpace) -> Iterator[dict[str, Any]]:
        nonlocal walked
        for config in grid(self):
            walked += 1
            assert walked <= 2 * size, "the grid was walked again for a later batch"
            yield config

    monkeypatch.setattr(SearchSpace, "grid", counting)
    method = get_method("grid")
    setup = Setup(space, {"epochs": 1, "batch_size": 1}, 0)
    groups = method.plan(setup)
    proposed = [p for g in groups for p in method.propose(setup, g, lambda first: ())]
    assert len(groups) == size and [i for i, _ in proposed] == list(range(size))
    assert proposed[-1] == (size - 1, {"a": 99, "b": 199})


def test_batches_propose_the_grid_in_order_without_repeats() -> None:
    spec = {"lr": [0.1, 0.1, 0.2], "o": [{"depth": [1, 2]}, {"depth": 2}, {"hidden": 8}]}
    space = SearchSpace.from_dict(spec)
    method = get_method("grid")
    setup = Setup(space, {"epochs": 1, "batch_size": 4}, 0)
    proposed = [p for g in method.plan(setup) for p in method.propose(setup, g, lambda f: ())]
    search = GridSearch(space)
    assert [c for _, c in proposed] == list(iter(search.ask, None))
    assert len(proposed) == math.prod([2, 3])
    # The cached grid is not handed out: changing a proposal changes no later one.
    proposed[0][1]["lr"] = 99
    again = method.propose(setup, method.plan(setup)[0], lambda f: ())
    assert again[0][1]["lr"] == 0.1
    # Spaces equal as values (1 == 1.0 == True) still give their own configurations.
    for values in ([1, 0], [1.0, 0.0], [True, False]):
        s = Setup(SearchSpace.from_dict({"x": values}), {"epochs": 1, "batch_size": 2}, 0)
        got = method.propose(s, method.plan(s)[0], lambda f: ())
        assert [type(c["x"]) for _, c in got] == [type(values[0])] * 2
