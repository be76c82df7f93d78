"""MADlib compile/fit params grids -> search spaces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from automl_core.errors import UserInputError
from automl_core.space import Choice, Conditional, Fixed, Range, SearchSpace, space_from_madlib

COMPILE = (
    "{'loss': ['categorical_crossentropy'], 'optimizer_params_list': ["
    "{'optimizer': ['SGD'], 'lr': [0.0001, 0.1, 'log'], 'momentum': [0.9, 0.99]}, "
    "{'optimizer': ['Adam'], 'lr': [0.001]}], 'metrics': ['accuracy']}"
)
FIT = "{'batch_size': [32, 64], 'epochs': [1]}"


def test_the_documented_example_converts() -> None:
    space = space_from_madlib(COMPILE, FIT)
    assert space.to_dict() == {
        "loss": "categorical_crossentropy",
        "optimizer_params_list": [
            {"optimizer": "sgd", "lr": {"loguniform": [0.0001, 0.1]}, "momentum": [0.9, 0.99]},
            {"optimizer": "adam", "lr": 0.001},
        ],
        "metrics": "accuracy",
        "batch_size": [32, 64],
        "epochs": 1,
    }
    config = space.sample(np.random.default_rng(0))
    assert config["optimizer"] in ("sgd", "adam")
    assert "optimizer_params_list" not in config
    assert config["loss"] == "categorical_crossentropy" and config["epochs"] == 1


def test_the_example_file_converts() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "spaces" / "madlib_example.json"
    example = json.loads(path.read_text())
    space = space_from_madlib(example["compile_params_grid"], example["fit_params_grid"])
    assert space == space_from_madlib(COMPILE, FIT)


def test_ranges_map_to_our_distributions() -> None:
    space = space_from_madlib(
        "{'lr': [0.001, 0.1, 'log'], 'momentum': [0.9, 0.999, 'log_near_one'], "
        "'learning_rate_decay': [0.0, 0.5, 'linear'], 'optimizer': ['RMSprop', 'adamw']}",
        "{'batch_size': [16]}",
    )
    nodes = dict(space.params)
    assert nodes["lr"] == Range("loguniform", 0.001, 0.1)
    assert nodes["momentum"] == Range("log_near_one", 0.9, 0.999)
    assert nodes["learning_rate_decay"] == Range("uniform", 0.0, 0.5)
    assert nodes["optimizer"] == Choice(("rmsprop", "adamw"))
    assert nodes["batch_size"] == Fixed(16)


def test_learning_rate_is_renamed_lr() -> None:
    space = space_from_madlib(
        "{'optimizer_params_list': [{'optimizer': ['Adam'], 'learning_rate': [0.01]}]}", "{}"
    )
    assert dict(space.params)["optimizer_params_list"] == Conditional(
        ((("optimizer", Fixed("adam")), ("lr", Fixed(0.01))),)
    )


def test_ranges_make_the_grid_fail_with_the_parameter_name() -> None:
    space = space_from_madlib(COMPILE, FIT)
    with pytest.raises(UserInputError, match="'lr'.*random or hyperopt"):
        space.grid_size()


def test_a_discrete_madlib_grid_matches_madlibs_count() -> None:
    # MADlib's grid: per optimizer option, the product of its lists, times the rest.
    space = space_from_madlib(
        "{'loss': ['categorical_crossentropy'], 'optimizer_params_list': ["
        "{'optimizer': ['SGD'], 'lr': [0.01, 0.1], 'momentum': [0.9, 0.95, 0.99]}, "
        "{'optimizer': ['Adam'], 'lr': [0.001, 0.0001]}], 'metrics': ['accuracy']}",
        FIT,
    )
    assert space.grid_size() == (2 * 3 + 2) * 2
    assert len(list(space.grid())) == space.grid_size()


@pytest.mark.parametrize(
    ("compile_grid", "fit_grid", "fragment"),
    [
        ("__import__('os').system('true')", FIT, "not a Python dict literal"),
        ("[1, 2]", FIT, "must be a dict literal"),
        ("{'lr': 0.1}", FIT, "must be lists"),
        ("{'lr': []}", FIT, "empty list"),
        ("{'lr': [0.1, 0.2, 'cubic']}", FIT, "'cubic'"),
        ("{'lr': [0.1, 'log']}", FIT, "exactly three items"),
        ("{'lr': [0.1, 0.01, 'log']}", FIT, "low must be < high"),
        ("{'lr': [0.0, 0.1, 'log']}", FIT, "bounds > 0"),
        ("{'optimizer': ['Adagrad']}", FIT, "'Adagrad' is not supported"),
        ("{'optimizer_params_list': [{}]}", FIT, "non-empty dict"),
        ("{'optimizer_params_list': []}", FIT, "non-empty list"),
        ("{'batch_size': [8]}", FIT, "'batch_size' twice"),
        (
            "{'lr': [0.1], 'optimizer_params_list': [{'optimizer': ['SGD'], 'lr': [0.2]}]}",
            FIT,
            "'lr' appears twice",
        ),
        ("{1: [2]}", FIT, "keys must be strings"),
    ],
)
def test_invalid_grids_are_rejected(compile_grid: str, fit_grid: str, fragment: str) -> None:
    with pytest.raises(UserInputError) as info:
        space_from_madlib(compile_grid, fit_grid)
    assert fragment in str(info.value)


def test_converted_space_round_trips() -> None:
    space = space_from_madlib(COMPILE, FIT)
    assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space


def test_repeated_values_and_options_are_kept_once_as_madlib_does() -> None:
    space = space_from_madlib(
        "{'optimizer_params_list': [{'optimizer': ['Adam'], 'lr': [0.001, 0.001]}, "
        "{'optimizer': ['adam'], 'lr': [0.001]}], 'loss': ['ce', 'ce']}",
        "{'batch_size': [32, 32, 64], 'epochs': [1, 1.0]}",
    )
    assert space.to_dict() == {
        "optimizer_params_list": [{"optimizer": "adam", "lr": 0.001}],
        "loss": "ce",
        "batch_size": [32, 64],
        "epochs": 1,
    }
    assert space.grid_size() == 2
