"""Parsing and validating search-space specs and files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from automl_core.errors import UserInputError
from automl_core.space import Choice, Conditional, Fixed, Range, SearchSpace

CONDITIONAL: dict[str, Any] = {
    "architecture": [
        {"architecture": "mlp", "hidden": [64, 128], "depth": {"randint": [1, 3]}},
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
    "beta": {"log_near_one": [0.9, 0.999]},
}


def test_spec_forms_become_the_expected_nodes() -> None:
    space = SearchSpace.from_dict(
        {
            "optimizer": "adam",
            "batch_size": [32, 64],
            "act": {"choice": ["relu", "tanh"]},
            "lr": {"loguniform": [0.001, 0.1]},
            "units": {"qloguniform": [8, 512, 8]},
            "depth": {"randint": [1, 4]},
            "head": [{"hidden": 3}, {}],
        }
    )
    nodes = dict(space.params)
    assert nodes["optimizer"] == Fixed("adam")
    assert nodes["batch_size"] == Choice((32, 64))
    assert nodes["act"] == Choice(("relu", "tanh"))
    assert nodes["lr"] == Range("loguniform", 0.001, 0.1)
    assert nodes["units"] == Range("qloguniform", 8, 512, 8)
    assert nodes["depth"] == Range("randint", 1, 4)
    assert nodes["head"] == Conditional(((("hidden", Fixed(3)),), ()))


def test_to_dict_round_trips_through_json() -> None:
    space = SearchSpace.from_dict(CONDITIONAL)
    spec = json.loads(json.dumps(space.to_dict()))
    assert SearchSpace.from_dict(spec) == space
    assert SearchSpace.from_dict(spec).to_dict() == spec


def test_names_include_every_option_but_not_group_labels() -> None:
    space = SearchSpace.from_dict(
        {"opt": [{"optimizer": "sgd", "momentum": 0.9}, {"optimizer": "adam"}], "lr": 0.1}
    )
    assert space.names == {"optimizer", "momentum", "lr"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"lr": {"uniform": [0.1, 0.01]}}, "low must be < high"),
        ({"lr": {"uniform": [0.1, 0.1]}}, "low must be < high"),
        ({"lr": {"loguniform": [0, 0.1]}}, "bounds > 0"),
        ({"lr": {"qloguniform": [-1, 10, 1]}}, "bounds > 0"),
        ({"bs": {"quniform": [16, 128, 0]}}, "q must be > 0"),
        ({"bs": {"quniform": [16, 128]}}, "[low, high, q]"),
        ({"lr": {"uniform": [0.1]}}, "[low, high]"),
        ({"lr": {"uniform": ["a", "b"]}}, "takes numbers"),
        ({"lr": {"uniform": [True, 2]}}, "takes numbers"),
        ({"lr": {"gaussian": [0, 1]}}, "unknown distribution 'gaussian'"),
        ({"lr": {"uniform": [0, 1], "loguniform": [1, 2]}}, "exactly one key"),
        ({"lr": []}, "empty choice"),
        ({"lr": {"choice": []}}, "empty choice"),
        ({"lr": {"choice": 3}}, "takes a list"),
        ({"depth": {"randint": [1.5, 3]}}, "integer bounds"),
        ({"m": {"log_near_one": [0.9, 1.0]}}, "high must be < 1"),
        ({"x": [1, {"a": 2}]}, "mixes plain values and mappings"),
        ({"x": [[1, 2], [3]]}, "lists of lists"),
        ({"x": float("nan")}, "finite"),
        ({"uniform": [0, 1]}, "distribution name"),
        ({"x": [{"uniform": [0, 1]}]}, "distribution name"),
        ({}, "empty"),
    ],
)
def test_invalid_specs_name_the_problem(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UserInputError) as info:
        SearchSpace.from_dict(spec)
    assert fragment in str(info.value)


def test_unknown_distribution_lists_the_valid_ones() -> None:
    with pytest.raises(UserInputError) as info:
        SearchSpace.from_dict({"lr": {"normal": [0, 1]}})
    for name in ("choice", "uniform", "loguniform", "quniform", "qloguniform", "randint"):
        assert name in str(info.value)
    assert "'lr'" in str(info.value)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(UserInputError, match="must be a mapping"):
        SearchSpace.from_dict([1, 2])  # type: ignore[arg-type]


def test_options_may_share_names() -> None:
    space = SearchSpace.from_dict(
        {"opt": [{"optimizer": "sgd", "lr": 0.1}, {"optimizer": "adam", "lr": 0.001}]}
    )
    assert space.names == {"optimizer", "lr"}


def test_nested_name_repeating_a_top_level_name_is_rejected() -> None:
    with pytest.raises(UserInputError, match="'lr' appears twice"):
        SearchSpace.from_dict(
            {"lr": 0.1, "opt": [{"optimizer": "sgd", "lr": 0.2}, {"optimizer": "adam"}]}
        )


def test_two_groups_producing_the_same_name_are_rejected() -> None:
    with pytest.raises(UserInputError, match="'dropout' appears twice"):
        SearchSpace.from_dict({"a": [{"dropout": 0.1}, {}], "b": [{"x": 1}, {"dropout": 0.2}]})


def test_duplicates_inside_nested_options_are_rejected() -> None:
    with pytest.raises(UserInputError, match="'m' appears twice"):
        SearchSpace.from_dict({"a": [{"m": 1, "inner": [{"m": 2}, {}]}]})


def test_group_label_may_equal_an_inner_name() -> None:
    space = SearchSpace.from_dict(
        {"architecture": [{"architecture": "mlp"}, {"architecture": "cnn1d"}]}
    )
    assert list(space.grid()) == [{"architecture": "mlp"}, {"architecture": "cnn1d"}]


def test_name_with_slash_colliding_with_a_path_is_rejected() -> None:
    with pytest.raises(UserInputError, match="contains '/'"):
        SearchSpace.from_dict({"g": [{"x": [1, 2]}], "g/0/x": [3, 4]})


# --- files ------------------------------------------------------------------------------


def test_yaml_file_reads_exponent_floats_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("lr: {loguniform: [1e-5, 1e-2]}\nwd: [1e-4, 3E-3]\n")
    space = SearchSpace.from_file(path)
    assert dict(space.params)["lr"] == Range("loguniform", 1e-5, 1e-2)
    assert dict(space.params)["wd"] == Choice((1e-4, 3e-3))


def test_json_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "space.json"
    path.write_text(json.dumps(CONDITIONAL))
    assert SearchSpace.from_file(path) == SearchSpace.from_dict(CONDITIONAL)


@pytest.mark.parametrize(
    ("name", "text"),
    [("s.yaml", "lr: 0.1\nlr: 0.2\n"), ("s.json", '{"lr": 0.1, "lr": 0.2}')],
)
def test_duplicate_keys_in_files_are_rejected(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserInputError, match="'lr' appears twice"):
        SearchSpace.from_file(path)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("s.yaml", "lr: [0.1, 0.2\n", "not valid YAML"),
        ("s.json", "{lr: 0.1}", "not valid JSON"),
        ("s.txt", "lr: 0.1", "use .yaml, .yml or .json"),
        ("s.yaml", "- 1\n- 2\n", "must be a mapping"),
    ],
)
def test_bad_files_are_rejected(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserInputError) as info:
        SearchSpace.from_file(path)
    assert fragment in str(info.value)


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        SearchSpace.from_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["digits.yaml", "digits_grid.yaml"])
def test_example_spaces_load(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "spaces" / name
    space = SearchSpace.from_file(path)
    assert {"architecture", "optimizer", "lr", "batch_size"} <= space.names
