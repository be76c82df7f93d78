"""Pure checks behind the bad-input refusals (issue 12): space values, limits, parser
bounds, reserved table names and CSV/npz readers. The CLI cases, with the database, are
in tests/integration/test_bad_input.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from automl_core.data.sources import read_source
from automl_core.data.validate import infer_labels, validate_output_table
from automl_core.errors import UserInputError
from automl_core.experiment.request import (
    LIMITS,
    SearchRequest,
    check_limit,
    check_option_limits,
)
from automl_core.space import SearchSpace
from automl_core.space.spec_file import MAX_ALIASES, MAX_DEPTH, MAX_NODES

# --- search-space values ------------------------------------------------------------------


def test_certain_values_are_fixed_values_choices_and_integer_range_ends() -> None:
    space = SearchSpace.from_dict(
        {
            "architecture": "mlp",
            "lr": {"loguniform": [0.001, 0.1]},
            "batch_size": {"quniform": [16, 70, 16]},
            "opt": [{"optimizer": "sgd", "momentum": [0.8, 0.9]}, {"depth": {"randint": [1, 4]}}],
        }
    )
    assert list(space.certain_values()) == [
        ("architecture", "architecture", "mlp"),
        ("batch_size", "batch_size", 16),
        ("batch_size", "batch_size", 64),
        ("opt/0/optimizer", "optimizer", "sgd"),
        ("opt/0/momentum", "momentum", 0.8),
        ("opt/0/momentum", "momentum", 0.9),
        ("opt/1/depth", "depth", 1),
        ("opt/1/depth", "depth", 3),
    ]


@pytest.mark.parametrize(
    "space",
    [
        {"optimizer": "sgd", "nesterov": True, "momentum": {"uniform": [0.5, 0.9]}},
        {"lr": {"uniform": [0.0, 0.1]}},  # 0 itself is (almost) never drawn
        {"momentum": 1.5, "optimizer": "adam"},  # adam does not read momentum
    ],
)
def test_a_value_valid_in_some_configuration_is_not_refused(space: dict[str, Any]) -> None:
    SearchRequest(dataset="d", space=space, method="random", n=1).validate()


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        ({"optimizer": "nadam"}, "Search-space parameter 'optimizer': The value of 'optimizer'"),
        ({"weight_decay": [0.0, -1.0]}, "'weight_decay' is -1.0, but must be >= 0.0"),
        ({"batch_size": {"quniform": [0, 64, 16]}}, "'batch_size' is 0, but must be >= 1"),
        ({"batch_size": 2.5}, "must be a whole number"),
    ],
)
def test_a_value_no_trial_could_train_with_is_refused(space: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UserInputError, match=fragment.replace("(", r"\(")):
        SearchRequest(dataset="d", space=space, method="random", n=1).validate()


@pytest.mark.parametrize("spec", [{"lr": [0.1, None]}, {"lr": None}, {"o": [{"lr": None}]}])
def test_null_is_refused_anywhere_in_a_space(spec: dict[str, Any]) -> None:
    with pytest.raises(UserInputError, match="is null, which would silently train with"):
        SearchSpace.from_dict(spec)


# --- limits shared by the CLI, the request and the spec loader ----------------------------


@pytest.mark.parametrize("key", sorted(LIMITS))
def test_every_limit_accepts_its_ends_and_refuses_past_them(key: str) -> None:
    low, high = LIMITS[key]
    assert check_limit(key, low) == low and check_limit(key, high) == high
    for bad in (low - 1, high + 1, True, "3", 2.0):
        with pytest.raises(UserInputError, match=f"must be an integer from {low} to {high}"):
            check_limit(key, bad)


def test_option_limits_name_the_option_as_typed() -> None:
    check_option_limits({"batch_size": None, "name": "x", "seed": 3})
    with pytest.raises(UserInputError) as info:
        check_option_limits({"batch_size": 0})
    assert (
        str(info.value) == "The value of --batch-size is 0, but must be an integer from 1 to 10000."
    )


def test_the_request_holds_seed_and_budget_to_the_limits() -> None:
    space = {"lr": [0.01, 0.1]}
    with pytest.raises(UserInputError, match="The value of seed is 1180591620717411303424"):
        SearchRequest(dataset="d", space=space, method="grid", seed=2**70).validate()
    with pytest.raises(UserInputError, match="The value of R is 10001, but must be"):
        SearchRequest(dataset="d", space=space, method="hyperband", R=10_001).validate()


# --- parser bounds --------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def nested(depth: int) -> str:
    """A JSON space whose deepest value sits at ``depth`` levels (the top mapping is 1)."""
    return '{"lr": ' + "[" * (depth - 2) + "0.1" + "]" * (depth - 2) + "}"


def test_json_nested_to_the_limit_parses_and_one_level_more_is_refused(tmp_path: Path) -> None:
    from automl_core.space.spec_file import load_spec_file

    load_spec_file(write(tmp_path, "ok.json", nested(MAX_DEPTH)))
    with pytest.raises(UserInputError, match=f"more than {MAX_DEPTH} levels deep"):
        load_spec_file(write(tmp_path, "deep.json", nested(MAX_DEPTH + 1)))


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_very_deep_files_are_refused_without_recursion_error(tmp_path: Path, depth: int) -> None:
    for name, text in (
        ("deep.json", '{"lr": ' + "[" * depth + "]" * depth + "}"),
        ("deep.yaml", "lr: " + "[" * depth + "]" * depth + "\n"),
    ):
        with pytest.raises(UserInputError, match="levels deep: a space needs a few levels"):
            SearchSpace.from_file(write(tmp_path, name, text))


def test_a_billion_laughs_yaml_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["l0: &l0 [{lr: 0.1}, {lr: 0.2}]"]
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"{{g: *l{i - 1}}}"] * 9) + "]")
    path = write(tmp_path, "laughs.yaml", "\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(UserInputError, match=f"more than {MAX_NODES:,} values"):
        SearchSpace.from_file(path)
    assert time.perf_counter() - start < 2


def test_a_mapping_that_shares_values_is_measured_as_written_out() -> None:
    level: Any = [{"lr": 0.1}, {"lr": 0.2}]
    for _ in range(9):
        level = [{"g": level}] * 9
    with pytest.raises(UserInputError, match="The search space holds more than"):
        SearchSpace.from_dict({"top": level})


def test_many_aliases_and_recursive_aliases_are_refused(tmp_path: Path) -> None:
    many = "a: &a 0.1\nlr: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    with pytest.raises(UserInputError, match=f"more than {MAX_ALIASES} YAML aliases"):
        SearchSpace.from_file(write(tmp_path, "many.yaml", many))
    with pytest.raises(UserInputError, match="not valid YAML: .*recursive"):
        SearchSpace.from_file(write(tmp_path, "rec.yaml", "lr: &x [0.1, *x]\n"))


def test_a_few_aliases_still_work(tmp_path: Path) -> None:
    text = "hidden: &h [32, 64]\nopt: [{optimizer: sgd, width: *h}, {optimizer: adam, width: *h}]\n"
    space = SearchSpace.from_file(write(tmp_path, "ok.yaml", text))
    assert space.grid_size() == 2 * 4


def test_yaml_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as info:
        SearchSpace.from_file(write(tmp_path, "bad.yaml", "a: [1, 2\nb: 3\n"))
    assert "\n" not in str(info.value) and "at line 2, column 2" in str(info.value)


# --- tables the product owns ------------------------------------------------------------


def test_names_ending_in_packed_are_reserved() -> None:
    assert validate_output_table("digits", option="--table") == "digits"
    with pytest.raises(UserInputError) as info:
        validate_output_table("digits_packed", option="--out-table")
    assert str(info.value) == (
        "The value of --out-table is 'digits_packed', but names ending in '_packed' are "
        "reserved for packed tables (this one is data set 'digits''s, made by `automl data "
        "prepare`): choose another --out-table."
    )


# --- CSV and npz ------------------------------------------------------------------------


def test_integral_decimal_labels_are_integers_and_others_stay_text() -> None:
    labels, kind = infer_labels(np.array(["1.0", "2.", "3", "-4.00"], dtype=object), source="s")
    assert kind == "integer" and labels.tolist() == [1, 2, 3, -4]
    labels, kind = infer_labels(np.array(["1.5", "2.0", "a"], dtype=object), source="s")
    assert kind == "text" and labels.tolist() == ["1.5", "2.0", "a"]


def test_a_bom_before_the_label_column_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefflabel,a\n1,0.5\n2,1.5\n".encode())
    data = read_source(f"csv:{path}")
    assert data.label_type == "integer" and data.parts[0].labels.tolist() == [1, 2]


def test_a_semicolon_file_is_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, "semi.csv", "a;label\n1,5;2\n")
    with pytest.raises(UserInputError, match=r"is semicolon-separated \(its header is 'a;label'\)"):
        read_source(f"csv:{path}")


def test_an_npz_missing_y_says_so(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.ones((2, 2)))
    with pytest.raises(UserInputError, match=r"the array 'y' is missing \(it has \['x'\]\)"):
        read_source(f"npz:{tmp_path / 'a.npz'}")
