"""Hyperparameter coercion: integral floats become ints; everything else wrong is a
UserInputError that names the key and the value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from automl_core.errors import UserInputError
from automl_core.training.params import get_bool, get_choice, get_float, get_int


@given(st.integers(min_value=-(2**52), max_value=2**52))
def test_integral_floats_and_numpy_scalars_become_ints(n: int) -> None:
    for value in (n, float(n), np.int64(n), np.float64(n)):
        got = get_int({"hidden": value}, "hidden", 7)
        assert got == n
        assert type(got) is int


@given(st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: not v.is_integer()))
def test_non_integral_floats_are_rejected(value: float) -> None:
    with pytest.raises(UserInputError, match="'hidden'.*whole number"):
        get_int({"hidden": value}, "hidden", 7)


@pytest.mark.parametrize("value", [True, "64", [64], math.nan, math.inf])
def test_int_rejects_non_numbers(value: object) -> None:
    with pytest.raises(UserInputError, match="'depth'"):
        get_int({"depth": value}, "depth", 2)


def test_missing_or_none_means_default() -> None:
    assert get_int({}, "depth", 2) == 2
    assert get_int({"depth": None}, "depth", 2) == 2
    assert get_float({"lr": None}, "lr", 0.1) == 0.1
    assert get_bool({}, "nesterov", True) is True
    assert get_choice({"optimizer": None}, "optimizer", "adam", ["adam", "sgd"]) == "adam"


def test_int_range_names_bound() -> None:
    with pytest.raises(UserInputError, match=r"'batch_size' is 0, but must be >= 1"):
        get_int({"batch_size": 0}, "batch_size", 32, minimum=1)
    with pytest.raises(UserInputError, match=r"must be <= 5"):
        get_int({"x": 6.0}, "x", 1, maximum=5)


def test_float_bounds_inclusive_and_exclusive() -> None:
    dropout = {"minimum": 0.0, "maximum": 1.0, "max_inclusive": False}
    assert get_float({"dropout": 0.0}, "dropout", 0.5, **dropout) == 0.0  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match=r"'dropout' is 1.0, but must be in \[0.0, 1.0\)"):
        get_float({"dropout": 1.0}, "dropout", 0.5, **dropout)  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match=r"'lr' is 0, but must be > 0.0"):
        get_float({"lr": 0}, "lr", 0.1, minimum=0.0, min_inclusive=False)
    with pytest.raises(UserInputError, match="finite"):
        get_float({"lr": math.nan}, "lr", 0.1)
    with pytest.raises(UserInputError, match="must be a number"):
        get_float({"lr": "0.1"}, "lr", 0.1)


def test_bool_accepts_zero_one_only() -> None:
    assert get_bool({"nesterov": 1.0}, "nesterov", False) is True
    assert get_bool({"nesterov": np.int64(0)}, "nesterov", True) is False
    with pytest.raises(UserInputError, match="'nesterov' is 'yes'"):
        get_bool({"nesterov": "yes"}, "nesterov", False)
    with pytest.raises(UserInputError, match="true or false"):
        get_bool({"nesterov": 2}, "nesterov", False)


def test_choice_lists_the_choices() -> None:
    with pytest.raises(UserInputError, match="'optimizer' is 'adagrad'.*'adam', 'sgd'"):
        get_choice({"optimizer": "adagrad"}, "optimizer", "adam", ["sgd", "adam"])


def test_a_number_past_float_range_is_refused_not_an_overflow() -> None:
    with pytest.raises(UserInputError, match=r"'lr' is 10{400}, but must be a finite"):
        get_float({"lr": 10**400}, "lr", 0.1)
    with pytest.raises(UserInputError, match=r"'hidden' is 1e\+300, but must be <= 8"):
        get_int({"hidden": 1e300}, "hidden", 7, maximum=8)
