"""Narrowing a space to its best configurations (``automl_core.space.narrow``).

Properties, for many random spaces (every range kind, choices, nested conditionals) and
random sets of configurations drawn from them: each configuration lies in the narrowed
space; each narrowed range lies within an original range of the same name, kind and
``q``; choices and conditionals only lose options; every configuration the narrowed
space gives is one the original could give. Then worked examples of the arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automl_core.errors import UserInputError
from automl_core.space import SearchSpace
from automl_core.space.model import Choice, Conditional, Node, Range, labelled, same_value
from automl_core.space.narrow import (
    MARGIN,
    ScoredTrial,
    narrow,
    narrow_range,
    top_trials,
)

# --- random spaces ----------------------------------------------------------------------


@st.composite
def _range(draw: st.DrawFn) -> dict[str, list[Any]]:
    kind = draw(
        st.sampled_from(
            ["uniform", "loguniform", "quniform", "qloguniform", "randint", "log_near_one"]
        )
    )
    if kind == "randint":
        low = draw(st.integers(-5, 20))
        return {kind: [low, low + draw(st.integers(1, 40))]}
    if kind == "log_near_one":
        low = draw(st.floats(0.0, 0.9))
        return {kind: [low, draw(st.floats(low + 0.01, 0.9999))]}
    if kind == "qloguniform":
        if draw(st.booleans()):  # integers
            low_i, q_i = draw(st.integers(1, 50)), draw(st.sampled_from([1, 8]))
            high_i = max(low_i * draw(st.integers(2, 100)), math.ceil(low_i / q_i) * q_i + q_i)
            return {kind: [low_i, high_i, q_i]}
        low = draw(st.floats(0.1, 10.0))
        return {kind: [low, math.ceil(low / 0.5) * 0.5 + draw(st.floats(0.5, 1e3)), 0.5]}
    if kind == "loguniform":
        low = draw(st.floats(1e-6, 10.0))
        return {kind: [low, low * draw(st.floats(1.5, 1e4))]}
    low = draw(st.floats(-100.0, 100.0))
    high = low + draw(st.floats(0.01, 500.0))
    if kind == "quniform":
        if draw(st.booleans()):  # integers: a batch size
            low_i = draw(st.integers(0, 64))
            q = draw(st.sampled_from([1, 4, 16, 64]))
            return {kind: [low_i, low_i + q * draw(st.integers(1, 8)), q]}
        q = draw(st.sampled_from([0.1, 0.25, 2.0]))
        return {kind: [low, max(high, math.ceil(low / q) * q + q), q]}
    return {kind: [low, high]}


def _leaf(draw: st.DrawFn) -> Any:
    form = draw(st.sampled_from(["range", "choice", "fixed"]))
    if form == "range":
        return draw(_range())
    if form == "choice":
        pool = ["a", "b", "c", 1, 2.5, True, 32, 64]
        return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=5, unique_by=repr))
    return draw(st.sampled_from(["adam", 3, 0.5, False]))


@st.composite
def spaces(draw: st.DrawFn, depth: int = 0) -> SearchSpace:
    spec: dict[str, Any] = {}
    for i in range(draw(st.integers(1, 4))):
        spec[f"p{depth}_{i}"] = _leaf(draw)
    if depth < 2 and draw(st.booleans()):
        options = []
        for j in range(draw(st.integers(1, 3))):
            option = {f"kind{depth}": f"option{j}"}
            for i in range(draw(st.integers(0, 2))):
                option[f"o{depth}_{i}"] = _leaf(draw)
            if depth < 1 and draw(st.booleans()):
                inner = draw(spaces(depth + 1)).to_dict()
                option[f"nested{depth}"] = [
                    {f"k{depth}": "x", **inner},
                    {f"k{depth}": "y"},
                ]
            options.append(option)
        spec[f"group{depth}"] = options
    return SearchSpace.from_dict(spec)


def _nodes(space: SearchSpace) -> list[tuple[str, Node]]:
    return [(name, node) for _, name, node in labelled(space.params)]


def _check_within(narrowed: SearchSpace, original: SearchSpace) -> None:
    """Each narrowed node has an original node of the same name it lies within."""
    originals = _nodes(original)
    for name, node in _nodes(narrowed):
        candidates = [o for n, o in originals if n == name and type(o) is type(node)]
        assert candidates, f"{name}: no original {type(node).__name__}"
        if isinstance(node, Range):
            assert node.low < node.high, (name, node)
            assert any(
                o.kind == node.kind
                and o.q == node.q
                and o.low <= node.low
                and node.high <= o.high
                and o.integral == node.integral
                for o in candidates
                if isinstance(o, Range)
            ), (name, node, candidates)
        elif isinstance(node, Choice):
            assert any(
                all(any(same_value(v, w) for w in o.values) for v in node.values)
                and len(node.values) <= len(o.values)
                for o in candidates
                if isinstance(o, Choice)
            ), (name, node, candidates)
        elif isinstance(node, Conditional):
            assert any(
                len(node.options) <= len(o.options)
                for o in candidates
                if isinstance(o, Conditional)
            )
        else:
            assert node in candidates


@settings(max_examples=300, deadline=None)
@given(spaces(), st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(1, 12))
def test_the_best_configurations_lie_in_a_narrowed_space_within_the_original(
    space: SearchSpace, seed: int, n: int, k: int
) -> None:
    rng = np.random.default_rng(seed)
    trials = [ScoredTrial(i, space.sample(rng), float(rng.uniform())) for i in range(n)]
    best = top_trials(trials, k)
    narrowed = narrow(space, [t.config for t in best])
    for trial in best:
        assert narrowed.space.contains(trial.config), trial.config
    _check_within(narrowed.space, space)
    # The narrowed space only gives configurations the original could give.
    for _ in range(20):
        assert space.contains(narrowed.space.sample(rng))
    # One line per parameter of the original space, or one per dropped option.
    labels = [c.label for c in narrowed.changes]
    assert len(labels) == len(set(labels))
    kept = {label for label, _, _ in labelled(space.params)} & set(labels)
    assert kept == {c.label for c in narrowed.changes if c.after != "dropped"}


@settings(max_examples=100, deadline=None)
@given(spaces(), st.integers(0, 2**32 - 1))
def test_narrowing_to_one_configuration_keeps_a_range_around_it(
    space: SearchSpace, seed: int
) -> None:
    config = space.sample(np.random.default_rng(seed))
    narrowed = narrow(space, [config])
    assert narrowed.space.contains(config)
    _check_within(narrowed.space, space)


# --- the arithmetic, worked -------------------------------------------------------------


def test_a_log_range_shrinks_in_log_space_to_short_decimals() -> None:
    space = SearchSpace.from_dict({"lr": {"loguniform": [1e-4, 1e-1]}})
    narrowed = narrow(space, [{"lr": 3e-3}, {"lr": 2e-2}])
    # Three decades wide, so 0.3 decades more on each side: 3e-3 / 10**0.3 = 0.0015,
    # 2e-2 * 10**0.3 = 0.0399, rounded outward to two significant digits.
    assert narrowed.space.to_dict() == {"lr": {"loguniform": [0.0015, 0.04]}}
    assert [str(c) for c in narrowed.changes] == ["lr: loguniform [0.0001, 0.1] -> [0.0015, 0.04]"]


@pytest.mark.parametrize(
    ("spec", "values", "expected"),
    [
        # All equal: a tenth of the width on each side, never a point.
        ({"uniform": [0, 1]}, [0.5, 0.5], ("uniform", 0.4, 0.6)),
        # A value on a bound: clipped to the original bound.
        ({"uniform": [0, 1]}, [0.0], ("uniform", 0, 0.1)),
        # Integers on multiples of q, within the original bounds.
        ({"quniform": [16, 512, 64]}, [64, 128], ("quniform", 16, 192)),
        # randint keeps high exclusive: 3 +- 1 -> [2, 5).
        ({"randint": [0, 10]}, [3], ("randint", 2, 5)),
        # log_near_one: on the scale of log(1 - x), rounded on the distance from 1.
        ({"log_near_one": [0.5, 0.999]}, [0.99], ("log_near_one", 0.981, 0.9947)),
    ],
)
def test_ranges_narrow_as_documented(
    spec: dict[str, list[Any]], values: list[Any], expected: tuple[Any, ...]
) -> None:
    ((kind, args),) = spec.items()
    original = Range(kind, *args)
    new = narrow_range(original, values, MARGIN)
    assert (new.kind, new.low, new.high) == expected
    assert new.q == original.q
    assert all(new.contains(v) for v in values)
    assert type(new.low) is type(expected[1]) and type(new.high) is type(expected[2])


DIGITS_LIKE = {
    "architecture": [
        {"architecture": "mlp", "hidden": [64, 128, 256], "dropout": {"uniform": [0.0, 0.3]}},
        {"architecture": "cnn2d", "channels": [16, 32]},
    ],
    "optimizer": [
        {"optimizer": "sgd", "lr": {"loguniform": [0.02, 0.1]}},
        {"optimizer": "adam", "lr": {"loguniform": [0.001, 0.01]}},
    ],
    "batch_size": [32, 64],
    "epochs_hint": 3,
}


def test_a_conditional_space_keeps_the_options_used_and_narrows_inside_them() -> None:
    space = SearchSpace.from_dict(DIGITS_LIKE)
    configs = [
        {"architecture": "mlp", "hidden": 128, "dropout": 0.1, "optimizer": "adam",
         "lr": 0.002, "batch_size": 64, "epochs_hint": 3},
        {"architecture": "mlp", "hidden": 256, "dropout": 0.2, "optimizer": "adam",
         "lr": 0.004, "batch_size": 64, "epochs_hint": 3},
    ]  # fmt: skip
    narrowed = narrow(space, configs)
    assert narrowed.space.to_dict() == {
        "architecture": [
            {"architecture": "mlp", "hidden": [128, 256], "dropout": {"uniform": [0.07, 0.23]}}
        ],
        "optimizer": [{"optimizer": "adam", "lr": {"loguniform": [0.0015, 0.0051]}}],
        "batch_size": [64],
        "epochs_hint": 3,
    }
    assert [str(c) for c in narrowed.changes] == [
        "architecture: options [architecture=mlp, architecture=cnn2d] -> [architecture=mlp]",
        "architecture/0/architecture: fixed mlp (unchanged)",
        "architecture/0/hidden: choice [64, 128, 256] -> [128, 256]",
        "architecture/0/dropout: uniform [0, 0.3] -> [0.07, 0.23]",
        "architecture/1: option architecture=cnn2d -> dropped",
        "optimizer: options [optimizer=sgd, optimizer=adam] -> [optimizer=adam]",
        "optimizer/0: option optimizer=sgd -> dropped",
        "optimizer/1/optimizer: fixed adam (unchanged)",
        "optimizer/1/lr: loguniform [0.001, 0.01] -> [0.0015, 0.0051]",
        "batch_size: choice [32, 64] -> [64]",
        "epochs_hint: fixed 3 (unchanged)",
    ]
    assert all(narrowed.space.contains(c) for c in configs)


def test_top_trials_follow_the_leaderboard_rule() -> None:
    trials = [
        ScoredTrial(0, {}, 0.8),
        ScoredTrial(1, {}, None),
        ScoredTrial(2, {}, 0.9),
        ScoredTrial(3, {}, 0.8),
        ScoredTrial(4, {}, math.nan),
    ]
    assert [t.trial_id for t in top_trials(trials, 2)] == [2, 0]  # ties by trial id
    # More asked for than have a score: all of those, best first.
    assert [t.trial_id for t in top_trials(trials, 10)] == [2, 0, 3]
    for bad in (0, -1, True, 1.5):
        with pytest.raises(UserInputError, match="The value of top is"):
            top_trials(trials, bad)  # type: ignore[arg-type]


def test_bad_input_is_refused_naming_it() -> None:
    space = SearchSpace.from_dict({"lr": {"uniform": [0.0, 1.0]}, "bs": [32, 64]})
    with pytest.raises(UserInputError, match="no configurations"):
        narrow(space, [])
    with pytest.raises(UserInputError, match="does not belong to the search space"):
        narrow(space, [{"lr": 2.0, "bs": 32}])
    for margin in (0, -0.1, 1.5, math.nan):
        with pytest.raises(UserInputError, match="The value of margin is"):
            narrow(space, [{"lr": 0.5, "bs": 32}], margin=margin)


def test_choices_keep_their_order_and_values_print_as_in_the_file() -> None:
    space = SearchSpace.from_dict({"nesterov": [True, False], "bs": [128, 32, 64]})
    narrowed = narrow(space, [{"nesterov": False, "bs": 64}, {"nesterov": False, "bs": 128}])
    assert narrowed.space.to_dict() == {"nesterov": [False], "bs": [128, 64]}
    assert [str(c) for c in narrowed.changes] == [
        "nesterov: choice [true, false] -> [false]",
        "bs: choice [128, 32, 64] -> [128, 64]",
    ]
