"""Hyperband's schedule against the paper, its invariants, promotion and bracket sampling."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automl_core.errors import UserInputError
from automl_core.search.base import is_missing, rank
from automl_core.search.hyperband import (
    bracket_seed,
    hyperband_schedule,
    max_bracket,
    sample_bracket,
    select_survivors,
)
from automl_core.space import SearchSpace

# Li et al. (JMLR 2018), Table 1: R = 81, eta = 3. Bracket s -> [(n_i, r_i), ...].
PAPER_TABLE = {
    4: [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
    3: [(34, 3), (11, 9), (3, 27), (1, 81)],
    2: [(15, 9), (5, 27), (1, 81)],
    1: [(8, 27), (2, 81)],
    0: [(5, 81)],
}


def test_r81_eta3_matches_the_paper() -> None:
    schedule = hyperband_schedule(81, 3)
    assert schedule.s_max == 4
    assert [b.s for b in schedule.brackets] == [4, 3, 2, 1, 0]
    for bracket in schedule.brackets:
        assert [(r.n_i, r.r_i) for r in bracket.rungs] == PAPER_TABLE[bracket.s]
        assert [r.i for r in bracket.rungs] == list(range(bracket.s + 1))


def test_total_epochs_counts_resumed_training_once() -> None:
    schedule = hyperband_schedule(81, 3)
    # Bracket 4 with resume: 81*1 + 27*(3-1) + 9*(9-3) + 3*(27-9) + 1*(81-27) = 297.
    assert schedule.bracket(4).total_epochs == 297
    assert schedule.total_epochs == 297 + 276 + 279 + 324 + 405
    assert schedule.total_epochs_from_scratch == sum(
        n * r for rungs in PAPER_TABLE.values() for n, r in rungs
    )


def test_to_dict_shape() -> None:
    data = hyperband_schedule(9, 3, skip_last=1).to_dict()
    assert data == {
        "s_max": 2,
        "brackets": [
            {"s": 2, "rungs": [{"i": 0, "n_i": 9, "r_i": 1}, {"i": 1, "n_i": 3, "r_i": 3}]},
            {"s": 1, "rungs": [{"i": 0, "n_i": 5, "r_i": 3}]},  # ceil(3/2 * 3)
        ],
    }


def test_skip_last_drops_rungs_and_empty_brackets() -> None:
    schedule = hyperband_schedule(81, 3, skip_last=2)
    assert [b.s for b in schedule.brackets] == [4, 3, 2]
    assert [(r.n_i, r.r_i) for r in schedule.bracket(2).rungs] == [(15, 9)]
    with pytest.raises(KeyError):
        schedule.bracket(1)


def test_r_not_a_power_of_eta_rounds_budgets_down_and_keeps_r_last() -> None:
    schedule = hyperband_schedule(10, 3)
    assert schedule.s_max == 2
    assert [(r.n_i, r.r_i) for r in schedule.bracket(2).rungs] == [(9, 1), (3, 3), (1, 10)]
    assert [(r.n_i, r.r_i) for r in schedule.bracket(1).rungs] == [(5, 3), (1, 10)]


@pytest.mark.parametrize(
    ("R", "eta", "expected"),
    [
        (1, 3, 0),
        (2, 3, 0),
        (3, 3, 1),
        (8, 2, 3),
        (242, 3, 4),
        (243, 3, 5),
        (244, 3, 5),
        (10**6, 10, 6),
    ],
)
def test_s_max_is_exact_at_power_boundaries(R: int, eta: int, expected: int) -> None:
    assert max_bracket(R, eta) == expected
    assert hyperband_schedule(R, eta).s_max == expected


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"R": 81, "eta": 1}, "The value of eta is 1, but must be >= 2."),
        ({"R": 0, "eta": 3}, "The value of R is 0, but must be >= 1."),
        ({"R": 81.0, "eta": 3}, "The value of R is 81.0, but must be an integer."),
        ({"R": 81, "eta": 2.5}, "must be an integer"),
        ({"R": 81, "eta": True}, "must be an integer"),
        ({"R": 81, "eta": 3, "skip_last": -1}, "skip_last is -1, but must be >= 0"),
        ({"R": 81, "eta": 3, "skip_last": 5}, "skip_last is 5, but must be <= s_max = 4"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(UserInputError) as info:
        hyperband_schedule(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


@st.composite
def _arguments(draw: st.DrawFn) -> tuple[int, int, int]:
    eta = draw(st.integers(2, 6))
    # Half the time sit exactly on (or next to) a power of eta, where float logs fail.
    if draw(st.booleans()):
        R = eta ** draw(st.integers(0, 8)) + draw(st.sampled_from([-1, 0, 1]))
        R = max(R, 1)
    else:
        R = draw(st.integers(1, 5000))
    s_max = max_bracket(R, eta)
    return R, eta, draw(st.integers(0, s_max))


@settings(max_examples=300, deadline=None)
@given(_arguments())
def test_schedule_invariants(args: tuple[int, int, int]) -> None:
    R, eta, skip_last = args
    schedule = hyperband_schedule(R, eta, skip_last)
    s_max = schedule.s_max
    assert eta**s_max <= R < eta ** (s_max + 1)
    assert [b.s for b in schedule.brackets] == list(range(s_max, skip_last - 1, -1))
    for bracket in schedule.brackets:
        s = bracket.s
        rungs = bracket.rungs
        assert len(rungs) == s + 1 - skip_last
        n = bracket.n
        assert n == math.ceil(Fraction(s_max + 1, s + 1) * eta**s)  # exact, no float
        for i, rung in enumerate(rungs):
            assert rung.i == i
            assert rung.n_i == n // eta**i >= 1
            assert rung.r_i >= 1
        for lower, upper in zip(rungs, rungs[1:], strict=False):
            assert upper.n_i <= lower.n_i
            assert upper.r_i >= lower.r_i
            assert upper.n_i == lower.n_i // eta  # survivors of a rung are the next rung
            assert bracket.survivors(lower.i) == upper.n_i
        assert bracket.survivors(rungs[-1].i) == 0
        if skip_last == 0:
            assert rungs[-1].r_i == R
        if eta**s_max == R:
            assert all(
                r.r_i == R // eta ** (s - r.i) and r.r_i * eta ** (s - r.i) == R for r in rungs
            )
        assert bracket.total_epochs == sum(
            r.n_i * (r.r_i - (rungs[r.i - 1].r_i if r.i else 0)) for r in rungs
        )
        assert bracket.total_epochs <= bracket.total_epochs_from_scratch
    assert schedule.total_epochs == sum(b.total_epochs for b in schedule.brackets)


# --- promotion -------------------------------------------------------------------------


def test_select_survivors_max_with_ties_by_smaller_id() -> None:
    results = [(5, 0.9), (2, 0.8), (7, 0.9), (1, 0.95), (3, 0.8)]
    assert select_survivors(results, 3) == [1, 5, 7]
    assert select_survivors(results, 4) == [1, 5, 7, 2]
    assert select_survivors(list(reversed(results)), 4) == [1, 5, 7, 2]


def test_select_survivors_min_mode() -> None:
    results = [(5, 0.3), (2, 0.1), (7, 0.1), (1, 0.5)]
    assert select_survivors(results, 2, mode="min") == [2, 7]


def test_nan_and_none_rank_last_in_both_modes() -> None:
    results = [(1, float("nan")), (2, 0.5), (3, None), (4, 0.7)]
    assert rank(results) == [4, 2, 1, 3]
    assert rank(results, mode="min") == [2, 4, 1, 3]
    assert select_survivors(results, 2) == [4, 2]
    assert select_survivors(results, 2, mode="min") == [2, 4]


def test_a_trial_without_a_result_never_survives() -> None:
    # A failed trial would only be trained, and fail, again: fewer ranked trials than
    # places keep just those, and a rung where every trial failed keeps none.
    results = [(1, float("nan")), (2, 0.5), (3, None), (4, np.float32("nan"))]
    assert select_survivors(results, 3) == [2]
    assert select_survivors([(1, None), (2, float("nan"))], 1) == []


def test_a_nan_of_any_real_type_is_missing() -> None:
    assert is_missing(np.float32("nan")) and is_missing(np.float64("nan"))
    assert is_missing(None) and is_missing(float("nan"))
    assert not is_missing(np.float32(0.5)) and not is_missing(0) and not is_missing(1.0)


def test_select_survivors_edges() -> None:
    assert select_survivors([], 3) == []
    assert select_survivors([(1, 0.5)], 0) == []
    assert select_survivors([(1, 0.5), (2, 0.6)], 5) == [2, 1]
    with pytest.raises(UserInputError, match="mode"):
        select_survivors([(1, 0.5)], 1, mode="best")
    with pytest.raises(UserInputError, match="n_keep is -1"):
        select_survivors([(1, 0.5)], -1)
    with pytest.raises(ValueError, match="unique"):
        select_survivors([(1, 0.5), (1, 0.6)], 1)


# --- sampling brackets -------------------------------------------------------------------

SPACE = SearchSpace.from_dict({"lr": {"loguniform": [1e-3, 1e-1]}, "bs": [32, 64]})


def test_sample_bracket_is_reproducible_and_sized() -> None:
    schedule = hyperband_schedule(27, 3)
    first = sample_bracket(SPACE, schedule, 3, seed=11)
    assert len(first) == schedule.bracket(3).n == 27
    assert first == sample_bracket(SPACE, schedule, 3, seed=11)
    assert first != sample_bracket(SPACE, schedule, 3, seed=12)
    # Another bracket draws an independent stream.
    assert sample_bracket(SPACE, schedule, 2, seed=11)[0] != first[0]


def test_bracket_sample_does_not_depend_on_skip_last() -> None:
    full = sample_bracket(SPACE, hyperband_schedule(27, 3), 3, seed=1)
    short = sample_bracket(SPACE, hyperband_schedule(27, 3, skip_last=2), 3, seed=1)
    assert full == short


def test_bracket_seed_is_an_int_and_validates() -> None:
    assert isinstance(bracket_seed(1, 2), int)
    assert bracket_seed(1, 2) != bracket_seed(1, 3) != bracket_seed(2, 2)
    np.random.default_rng(bracket_seed(0, 0))
    with pytest.raises(UserInputError, match="seed"):
        bracket_seed(-1, 0)
