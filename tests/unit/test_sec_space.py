"""Space files and commands that a hostile or mistaken input made crash, hang or grow:
randint past int64, sampling a huge grid, huge files, quadratic MADlib dedup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automl_core.cli import main
from automl_core.errors import UserInputError
from automl_core.space import SearchSpace, space_from_madlib
from automl_core.space.madlib import _without_repeats
from automl_core.space.model import same_value
from automl_core.space.spec_file import MAX_FILE_BYTES, MAX_NODES

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# --- randint within int64 -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bounds",
    [[0, 10**29], [INT64_MIN - 1, 0], [0, INT64_MAX + 2], [-(10**30), -(10**29)]],
)
def test_randint_bounds_outside_int64_are_refused(bounds: list[int]) -> None:
    """`randint: [0, 10**29]` passed and then sampling raised numpy's "high is out of
    bounds for int64"."""
    with pytest.raises(UserInputError, match=r"'tag'.*randint .* 64-bit integer range"):
        SearchSpace.from_dict({"tag": {"randint": bounds}})


def test_randint_up_to_the_int64_ends_is_sampled() -> None:
    space = SearchSpace.from_dict({"tag": {"randint": [INT64_MIN, INT64_MAX + 1]}})
    values = [space.sample(np.random.default_rng(i))["tag"] for i in range(20)]
    assert all(type(v) is int and INT64_MIN <= v <= INT64_MAX for v in values)


def test_space_sample_refuses_randint_past_int64(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("tag: {randint: [0, 100000000000000000000000000000]}\n")
    for method in ("random", "grid"):
        assert main(["space", "sample", str(path), "--method", method, "--n", "2"]) == 2
        assert "64-bit integer range" in capsys.readouterr().err


# --- space sample --method grid ---------------------------------------------------------------


def _huge_grid(tmp_path: Path) -> Path:
    """A grid of 1000**4 = 10**12 configurations, in a file of a few kilobytes."""
    values = ", ".join(str(i) for i in range(1000))
    path = tmp_path / "huge.yaml"
    path.write_text("".join(f"{k}: [{values}]\n" for k in "abcd"))
    return path


@pytest.mark.timeout(30)
def test_sampling_a_grid_over_the_limit_without_n_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --n the whole 10**12 grid was built in memory (1.5 GB until killed)."""
    assert main(["space", "sample", str(_huge_grid(tmp_path)), "--method", "grid"]) == 2
    err = capsys.readouterr().err
    assert "1,000,000,000,000 configurations" in err and "at most 100,000" in err
    assert "--n" in err and err.count("\n") == 1


@pytest.mark.timeout(30)
def test_sampling_a_grid_over_the_limit_with_n_prints_its_first_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(_huge_grid(tmp_path))
    assert main(["space", "sample", path, "--method", "grid", "--n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("grid size: 1000000000000 (as listed")
    assert [json.loads(line) for line in lines[1:]] == [
        {"a": 0, "b": 0, "c": 0, "d": d} for d in range(3)
    ]
    assert main(["space", "sample", path, "--method", "grid", "--n", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"a": 0, "b": 0, "c": 0, "d": d} for d in (0, 1)]


# --- space files: size and message ----------------------------------------------------------


def test_a_space_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """A 2 MB `a: [1,1,...]` took 24 s and 707 MB before it was refused."""
    for name, text in (
        ("big.yaml", "a: [" + ",".join(["1"] * 10**6) + "]\n"),
        ("big.json", '{"a": [' + ",".join(["1"] * 10**6) + "]}"),
    ):
        path = tmp_path / name
        path.write_text(text)
        assert path.stat().st_size > MAX_FILE_BYTES
        with pytest.raises(UserInputError, match=rf"{name}' is larger than {MAX_FILE_BYTES:,}"):
            SearchSpace.from_file(path)


@pytest.mark.parametrize("name", ["many.yaml", "many.json"])
def test_too_many_values_without_aliases_does_not_blame_aliases(tmp_path: Path, name: str) -> None:
    values = ",".join(["1"] * (MAX_NODES + 10))
    path = tmp_path / name
    path.write_text(f"a: [{values}]\n" if name.endswith("yaml") else f'{{"a": [{values}]}}')
    assert path.stat().st_size < MAX_FILE_BYTES
    with pytest.raises(UserInputError, match=f"more than {MAX_NODES:,} values") as caught:
        SearchSpace.from_file(path)
    assert "alias" not in str(caught.value) and "list fewer" in str(caught.value)


def test_too_many_values_through_aliases_still_names_aliases(tmp_path: Path) -> None:
    lines = ["l0: &l0 [" + ", ".join(["1"] * 50) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 50) + "]" for i in (1, 2)]
    path = tmp_path / "aliases.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserInputError, match="once its aliases are written out"):
        SearchSpace.from_file(path)


# --- MADlib dedup -----------------------------------------------------------------------------


def _reference(values: list[Any]) -> list[Any]:
    """The dedup as it was written first (quadratic): the semantics to keep."""
    kept: list[Any] = []
    for value in values:
        if not any(same_value(value, k) for k in kept):
            kept.append(value)
    return kept


_SCALARS = st.one_of(
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, -1.0, 2.5, float("nan"), float("inf")]),
    st.sampled_from(["a", "A", "1", ""]),
    st.none(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_VALUES, max_size=12))
def test_dedup_keeps_the_values_and_order_same_value_keeps(values: list[Any]) -> None:
    got, want = _without_repeats(values), _reference(values)
    assert len(got) == len(want) and all(a is b for a, b in zip(got, want, strict=True))


def test_dedup_treats_numbers_and_booleans_as_before() -> None:
    nan = float("nan")
    values = [1, 1.0, True, 1, False, 0, 0.0, "1", [1], [1.0], [True], (1,), nan, nan]
    assert _without_repeats(values) == _reference(values)
    assert [type(v).__name__ for v in _without_repeats(values)] == [
        "int", "bool", "bool", "int", "str", "list", "tuple", "float", "float"
    ]  # fmt: skip


def test_a_long_madlib_list_keeps_the_first_of_each_value() -> None:
    # 8,000 values took 15.8 s (each compared with all kept before it); now one pass.
    fit = "{'batch_size': [" + ", ".join(str(i) for i in range(10_000)) + ", 1, 2.0]}"
    space = space_from_madlib("{'loss': ['x']}", fit)
    assert space.to_dict()["batch_size"] == list(range(10_000))


def test_repeated_optimizer_options_are_kept_once() -> None:
    options = ", ".join(f"{{'optimizer': ['SGD'], 'lr': [{i}]}}" for i in range(3000))
    repeats = "{'optimizer': ['sgd'], 'lr': [1.0]}, {'optimizer': ['SGD'], 'lr': [0]}"
    compile_grid = f"{{'optimizer_params_list': [{options}, {repeats}]}}"
    space = space_from_madlib(compile_grid, "{'batch_size': [32]}")
    assert [o["lr"] for o in space.to_dict()["optimizer_params_list"]] == list(range(3000))
