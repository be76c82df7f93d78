"""The bridge between search spaces and hyperopt: expressions, assignments, round trips."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hyperopt import Trials, rand
from hyperopt.base import Domain
from hyperopt.fmin import space_eval

from automl_core.errors import UserInputError
from automl_core.space import SearchSpace

SPACE: dict[str, Any] = {
    "architecture": [
        {"architecture": "mlp", "hidden": [64, 128, 256], "depth": {"randint": [1, 3]}},
        {"architecture": "cnn2d", "channels": [16, 32], "kernel_size": 3},
    ],
    "optimizer": [
        {
            "optimizer": "sgd",
            "momentum": {"uniform": [0.8, 0.95]},
            "lr": {"loguniform": [0.01, 0.1]},
        },
        {"optimizer": "adam", "lr": {"loguniform": [0.001, 0.01]}},
    ],
    "batch_size": {"quniform": [16, 128, 16]},
    "units": {"qloguniform": [8, 512, 8]},
    "beta": {"log_near_one": [0.9, 0.999]},
    "scale": {"quniform": [0.0, 1.0, 0.25]},
    "loss": "cross_entropy",
}


def _domain(space: SearchSpace) -> Domain:
    return Domain(lambda _: 0.0, space.to_hyperopt())


def _hyperopt_draws(space: SearchSpace, n: int, seed: int) -> list[dict[str, list[Any]]]:
    domain = _domain(space)
    trials = Trials()
    return [rand.suggest([tid], domain, trials, seed + tid)[0]["misc"]["vals"] for tid in range(n)]


def test_labels_are_unique_and_match_the_assignment_keys() -> None:
    space = SearchSpace.from_dict(SPACE)
    labels = set(_domain(space).params)
    assert "optimizer/0/lr" in labels and "optimizer/1/lr" in labels
    config = space.sample(np.random.default_rng(0))
    assert set(space.hyperopt_vals(config)) == labels


def test_hyperopt_draws_decode_to_configs_of_the_space_with_native_types() -> None:
    space = SearchSpace.from_dict(SPACE)
    seen = set()
    for vals in _hyperopt_draws(space, 60, seed=1):
        config = space.config_from_hyperopt(vals)
        assert space.contains(config), config
        assert type(config["batch_size"]) is int
        assert type(config["units"]) is int
        assert type(config["scale"]) is float
        if config["architecture"] == "mlp":
            assert type(config["depth"]) is int and config["depth"] in (1, 2)
        assert all(not isinstance(v, np.generic) for v in config.values())
        seen.add((config["architecture"], config["optimizer"]))
    assert len(seen) == 4


def test_config_to_vals_to_config_round_trips() -> None:
    space = SearchSpace.from_dict(SPACE)
    rng = np.random.default_rng(5)
    for _ in range(100):
        config = space.sample(rng)
        back = space.config_from_hyperopt(space.hyperopt_vals(config))
        assert back == config
        assert [type(v) for v in back.values()] == [type(v) for v in config.values()]


def test_vals_to_config_to_vals_round_trips() -> None:
    space = SearchSpace.from_dict(SPACE)
    for vals in _hyperopt_draws(space, 30, seed=11):
        config = space.config_from_hyperopt(vals)
        again = space.hyperopt_vals(config)
        for label, value in vals.items():
            assert len(again[label]) == len(value), label
            if value:
                assert again[label][0] == pytest.approx(float(value[0]), rel=1e-12), label


def test_space_eval_of_the_expression_agrees_with_the_flat_config() -> None:
    space = SearchSpace.from_dict(SPACE)
    vals = _hyperopt_draws(space, 1, seed=3)[0]
    config = space.config_from_hyperopt(vals)
    point = space_eval(space.to_hyperopt(), {k: v[0] for k, v in vals.items() if v})
    flat: dict[str, Any] = {}
    for key, value in point.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    assert flat.keys() == config.keys()
    for key, value in config.items():
        assert flat[key] == pytest.approx(value), key


def test_plain_assignment_form_is_accepted() -> None:
    space = SearchSpace.from_dict(
        {"opt": [{"optimizer": "sgd", "m": [0.9, 0.99]}, {"optimizer": "adam"}]}
    )
    assert space.config_from_hyperopt({"opt": 0, "opt/0/m": 1}) == {"optimizer": "sgd", "m": 0.99}
    assert space.config_from_hyperopt({"opt": 1}) == {"optimizer": "adam"}


def test_bad_assignments_are_rejected() -> None:
    space = SearchSpace.from_dict(
        {"opt": [{"optimizer": "sgd", "m": [0.9, 0.99]}, {"optimizer": "adam"}]}
    )
    with pytest.raises(UserInputError, match="no value for 'opt/0/m'"):
        space.config_from_hyperopt({"opt": 0})
    with pytest.raises(UserInputError, match="index 2"):
        space.config_from_hyperopt({"opt": 2})


def test_option_choice_prefers_the_option_explaining_most_keys() -> None:
    space = SearchSpace.from_dict(
        {"opt": [{"optimizer": "sgd"}, {"optimizer": "sgd", "momentum": {"uniform": [0.5, 1.0]}}]}
    )
    assert space.hyperopt_vals({"optimizer": "sgd", "momentum": 0.9})["opt"] == [1]
    assert space.hyperopt_vals({"optimizer": "sgd"})["opt"] == [0]


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"optimizer": "rmsprop", "lr": 0.01, "bs": 32}, "no option of 'opt' fits"),
        ({"optimizer": "adam", "lr": 0.5, "bs": 32}, "outside loguniform"),
        ({"optimizer": "adam", "bs": 32}, "has no 'lr'"),
        ({"optimizer": "adam", "lr": 0.01, "bs": 3}, "'bs' is 3, not one of [32, 64]"),
        ({"optimizer": "adam", "lr": 0.01, "bs": True}, "not one of"),
    ],
)
def test_configs_outside_the_space_are_rejected(config: dict[str, Any], fragment: str) -> None:
    space = SearchSpace.from_dict(
        {
            "opt": [{"optimizer": "sgd"}, {"optimizer": "adam"}],
            "lr": {"loguniform": [0.001, 0.1]},
            "bs": [32, 64],
        }
    )
    with pytest.raises(UserInputError) as info:
        space.hyperopt_vals(config)
    assert fragment in str(info.value)
    assert not space.contains(config)


def test_extra_keys_are_ignored_for_vals_but_fail_contains() -> None:
    space = SearchSpace.from_dict({"lr": [0.1, 0.01]})
    assert space.hyperopt_vals({"lr": 0.01, "note": "x"}) == {"lr": [1]}
    assert not space.contains({"lr": 0.01, "note": "x"})


def test_json_integral_float_matches_an_int_choice() -> None:
    space = SearchSpace.from_dict({"bs": [32, 64]})
    assert space.hyperopt_vals({"bs": 64.0}) == {"bs": [1]}


def test_a_wide_randint_costs_tpe_no_more_than_a_narrow_one() -> None:
    # TPE modelled hp.randint as one category per value: a batch over 10**7 integers
    # took 31.7 s and 1.36 GB (a review), and [0, 2**31 - 1] would need many GB.
    import time

    from automl_core.search.hyperopt_search import HyperoptSearch

    wide = SearchSpace.from_dict({"seed": {"randint": [5, 2**31 - 1]}, "lr": {"uniform": [0, 1]}})
    rng = np.random.default_rng(0)
    told = [(wide.sample(rng), float(rng.random())) for _ in range(8)]
    start = time.process_time()
    batch = HyperoptSearch.from_history(wide, told, seed=0, n_startup_jobs=4).ask_batch(4)
    assert time.process_time() - start < 5  # CPU seconds; 0.5 s here, hours before
    for config in batch:
        assert type(config["seed"]) is int and 5 <= config["seed"] < 2**31 - 1
        assert wide.config_from_hyperopt(wide.hyperopt_vals(config)) == config


@pytest.mark.parametrize("high", [1001, 1002, 5000])
def test_a_wide_randint_gives_every_integer_of_its_range_and_no_other(high: int) -> None:
    space = SearchSpace.from_dict({"k": {"randint": [-3, high]}})
    values = [space.config_from_hyperopt(v)["k"] for v in _hyperopt_draws(space, 3000, seed=2)]
    assert min(values) >= -3 and max(values) <= high - 1
    assert all(type(v) is int for v in values)
    # n uniform draws over w integers reach 1 - e**(-n/w) of them on average: a gap or a
    # clump falls short. (The two ends have half weight, module docstring: may be missed.)
    width = high + 3
    assert len(set(values)) / width > 0.9 * (1 - math.exp(-len(values) / width))
