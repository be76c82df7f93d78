"""Grid and random search: ask/tell bookkeeping, exhaustion, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from automl_core.errors import UserInputError
from automl_core.search import GridSearch, RandomSearch
from automl_core.space import SearchSpace

GRID = SearchSpace.from_dict(
    {
        "architecture": [{"architecture": "mlp", "hidden": [64, 128]}, {"architecture": "cnn2d"}],
        "lr": [0.001, 0.01],
    }
)
CONTINUOUS = SearchSpace.from_dict({"lr": {"loguniform": [1e-3, 1e-1]}, "bs": [32, 64]})


def test_grid_search_asks_the_grid_in_order_then_none() -> None:
    search = GridSearch(GRID)
    assert search.size == 6
    asked = []
    while (config := search.ask()) is not None:
        asked.append(config)
    assert asked == list(GRID.grid())
    assert search.asked == 6
    assert search.ask() is None


def test_grid_search_rejects_continuous_spaces_before_asking() -> None:
    with pytest.raises(UserInputError, match="'lr'"):
        GridSearch(CONTINUOUS)


def test_tell_records_and_best_ranks() -> None:
    search = GridSearch(GRID)
    for _ in range(4):
        search.ask()
    search.tell(0, 0.8)
    search.tell(1, float("nan"))
    search.tell(2, 0.9)
    search.tell(3, 0.9)
    assert search.results == {0: 0.8, 1: None, 2: 0.9, 3: 0.9}
    assert search.best() == (2, 0.9)
    assert search.best(mode="min") == (0, 0.8)
    search.tell(0, 0.95)  # a re-run replaces the earlier result
    assert search.best() == (0, 0.95)
    assert search.config(2) == list(GRID.grid())[2]
    with pytest.raises(KeyError):
        search.tell(4, 0.5)


def test_best_is_none_without_successes() -> None:
    search = GridSearch(GRID)
    search.ask()
    assert search.best() is None
    search.tell(0, None)
    assert search.best() is None


def test_asked_configs_cannot_be_mutated_through_the_return_value() -> None:
    search = GridSearch(GRID)
    config = search.ask()
    assert config is not None
    config["lr"] = 123
    assert search.config(0)["lr"] == 0.001


def test_random_search_is_reproducible_and_stops_after_n() -> None:
    def run(seed: int) -> list[dict[str, object]]:
        search = RandomSearch(CONTINUOUS, 5, np.random.default_rng(seed))
        configs = list(iter(search.ask, None))
        assert search.ask() is None
        return configs

    first = run(3)
    assert len(first) == 5
    assert first == run(3)
    assert first != run(4)
    assert len({c["lr"] for c in first}) == 5
    assert all(CONTINUOUS.contains(c) for c in first)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_random_search_validates_n(n: object) -> None:
    with pytest.raises(UserInputError, match="n is"):
        RandomSearch(CONTINUOUS, n, np.random.default_rng(0))  # type: ignore[arg-type]


def test_random_search_needs_a_generator() -> None:
    with pytest.raises(TypeError, match="Generator"):
        RandomSearch(CONTINUOUS, 2, 42)  # type: ignore[arg-type]
