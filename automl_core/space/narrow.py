"""Narrowing a search space to where its best configurations lie.

``narrow(space, configs)`` builds the space a second round searches: each choice keeps
the options ``configs`` used (in their original order), each numeric range shrinks to
the span of the values ``configs`` took, widened on both sides by ``margin`` times the
range's original width and clipped to its original bounds; fixed values stay. Widths
and margins are measured where the range samples uniformly: the log of the value for
``loguniform``/``qloguniform``, ``log(1 - value)`` for ``log_near_one``, the value
itself otherwise. A conditional choice keeps the options used and narrows each kept
option's own parameters from the configurations that chose it.

Promises (tested as properties in ``tests/unit/test_space_narrow.py``): every
configuration of ``configs`` lies in the narrowed space; every narrowed range lies in
the original one and keeps its kind (and ``q``); a choice only loses options; a range
never collapses to a point, because the margin is a share of the original width.

New bounds are rounded outward to short decimals (two significant digits on a log scale,
a tenth of the new width's order of magnitude on a linear one), so the printed space reads
``lr: loguniform [0.0021, 0.034]`` rather than a float's 17 digits; rounding only ever
widens. Integer ranges keep integer bounds (quantized ones snap to multiples of ``q``).

``top_trials`` picks the configurations to narrow from with the leaderboard's rule (best
validation accuracy first, ties by trial id; ``automl.leaderboard``).

Pure functions of their arguments: no database, no randomness.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl_core.errors import UserInputError
from automl_core.space import parse
from automl_core.space.model import (
    Choice,
    Conditional,
    Fixed,
    Node,
    Params,
    Range,
)
from automl_core.space.search_space import SearchSpace

#: Each side of a narrowed range is widened by this share of the range's original width.
MARGIN = 0.1
#: How many of the best trials a space is narrowed to, unless the user says otherwise.
DEFAULT_TOP = 5
#: Significant digits of a narrowed bound on a log scale.
_LOG_DIGITS = 2

Config = Mapping[str, Any]
Vals = dict[str, list[Any]]


@dataclass(frozen=True)
class Change:
    """What narrowing did to one parameter: ``label`` as in ``model.labelled``
    (``optimizer/1/lr`` is ``lr`` in option 1 of ``optimizer``, numbered as in the
    original space), and the parameter before and after, as short text."""

    label: str
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def __str__(self) -> str:
        """``lr: loguniform [0.0001, 0.1] -> [0.0015, 0.04]`` (the kind said once)."""
        if not self.changed:
            return f"{self.label}: {self.before} (unchanged)"
        kind, _, rest = self.after.partition(" ")
        after = rest if rest and self.before.partition(" ")[0] == kind else self.after
        return f"{self.label}: {self.before} -> {after}"


@dataclass(frozen=True)
class Narrowed:
    """The narrowed space and one ``Change`` per parameter of the original, in order."""

    space: SearchSpace
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class ScoredTrial:
    """A trial to rank: its id, configuration and score (higher is better; None: none)."""

    trial_id: int
    config: Config
    score: float | None


def top_trials(trials: Iterable[ScoredTrial], k: int) -> list[ScoredTrial]:
    """The ``k`` best trials with a score, best first, ties by trial id (the
    leaderboard's rule); all of them when fewer than ``k`` have one.

    Raises ``UserInputError`` when ``k`` is not an integer >= 1.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserInputError(f"The value of top is {k!r}, but must be an integer >= 1.")
    scored = [t for t in trials if t.score is not None and math.isfinite(t.score)]
    scored.sort(key=lambda t: (-float(t.score or 0.0), t.trial_id))
    return scored[:k]


def narrow(space: SearchSpace, configs: Sequence[Config], *, margin: float = MARGIN) -> Narrowed:
    """The part of ``space`` around ``configs`` (see the module docstring).

    ``configs`` are configurations of ``space`` (extra keys are ignored); ``margin`` is
    a share of each range's width, from 0.01 to 1. Raises
    ``UserInputError`` when ``configs`` is empty, one of them is not in ``space``, or
    ``margin`` is out of bounds.
    """
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0.01 <= margin <= 1:
        raise UserInputError(
            f"The value of margin is {margin!r}, but must be a number from 0.01 to 1."
        )
    if not configs:
        raise UserInputError("There are no configurations to narrow the space to.")
    # hyperopt's label assignment tells, for every configuration, which option of each
    # conditional and which value of each choice it took (the matching lives there).
    points = [(config, space.hyperopt_vals(config)) for config in configs]
    changes: list[Change] = []
    params = _narrow_params(space.params, "", points, float(margin), changes)
    # Parsed again: the narrowed space is held to every rule a space file is.
    narrowed = SearchSpace.from_dict(parse.params_to_dict(params))
    return Narrowed(narrowed, tuple(changes))


# --- parameters -----------------------------------------------------------------------


def _narrow_params(
    params: Params,
    prefix: str,
    points: Sequence[tuple[Config, Vals]],
    margin: float,
    changes: list[Change],
) -> Params:
    out: list[tuple[str, Node]] = []
    for name, node in params:
        label = f"{prefix}/{name}" if prefix else name
        if isinstance(node, Fixed):
            new: Node = node
            changes.append(
                Change(label, f"fixed {_text(node.value)}", f"fixed {_text(node.value)}")
            )
        elif isinstance(node, Choice):
            used = _indices(points, label)
            new = Choice(tuple(node.values[i] for i in used))
            changes.append(Change(label, _choice_text(node.values), _choice_text(new.values)))
        elif isinstance(node, Conditional):
            new = _narrow_conditional(node, label, points, margin, changes)
        else:
            new = narrow_range(node, [config[name] for config, _ in points], margin)
            changes.append(Change(label, _range_text(node), _range_text(new)))
        out.append((name, new))
    return tuple(out)


def _indices(points: Sequence[tuple[Config, Vals]], label: str) -> list[int]:
    return sorted({int(vals[label][0]) for _, vals in points})


def _narrow_conditional(
    node: Conditional,
    label: str,
    points: Sequence[tuple[Config, Vals]],
    margin: float,
    changes: list[Change],
) -> Conditional:
    used = _indices(points, label)
    names = [_option_text(i, option) for i, option in enumerate(node.options)]
    changes.append(
        Change(
            label,
            f"options [{', '.join(names)}]",
            f"options [{', '.join(names[i] for i in used)}]",
        )
    )
    options = []
    for i, option in enumerate(node.options):
        if i not in used:
            changes.append(Change(f"{label}/{i}", f"option {names[i]}", "dropped"))
            continue
        chose = [(c, v) for c, v in points if int(v[label][0]) == i]
        options.append(_narrow_params(option, f"{label}/{i}", chose, margin, changes))
    return Conditional(tuple(options))


# --- ranges ---------------------------------------------------------------------------


def _scale(kind: str) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """``(to, back)``: where ``kind`` samples uniformly, and the way back to values."""
    if kind in ("loguniform", "qloguniform"):
        return math.log, math.exp
    if kind == "log_near_one":
        return (lambda x: math.log(1.0 - x)), (lambda t: 1.0 - math.exp(t))
    return float, float


def narrow_range(node: Range, values: Sequence[Any], margin: float = MARGIN) -> Range:
    """``node`` shrunk to the span of ``values`` widened by ``margin`` of its width.

    ``values`` are values ``node`` can take (at least one). The result has the same kind
    and ``q``, lies within ``node``'s bounds and holds every value.
    """
    to, back = _scale(node.kind)
    ends = (to(float(node.low)), to(float(node.high)))
    slack = margin * abs(ends[1] - ends[0])
    scaled = [to(float(v)) for v in values]
    # log(1 - x) falls as x rises: map both ends back and take them in order.
    a, b = back(min(scaled) - slack), back(max(scaled) + slack)
    low, high = min(a, b), max(a, b)
    if node.kind == "randint":
        new_low: int | float = max(int(node.low), math.ceil(low))
        new_high: int | float = min(int(node.high), math.floor(high) + 1)
    elif node.integral:  # a quantized range of integers: bounds on multiples of q
        q = int(node.q or 1)
        new_low = max(int(node.low), math.floor(low / q) * q)
        new_high = min(int(node.high), math.ceil(high / q) * q)
    else:
        width = high - low
        new_low = max(node.low, _round_outward(low, node.kind, up=False, width=width))
        new_high = min(node.high, _round_outward(high, node.kind, up=True, width=width))
    return Range(node.kind, new_low, new_high, node.q)


def _round_outward(x: float, kind: str, *, up: bool, width: float) -> float:
    """``x`` rounded to a short decimal, never towards the inside of the range (but for
    the last bit of ``1 - d``, which ``Range.contains``' slack absorbs)."""
    if kind == "log_near_one":  # round the distance from 1, where the scale is logarithmic
        distance = _decimal(1.0 - x, _exponent(1.0 - x), up=not up)
        return float(f"{1.0 - distance:.12g}")
    if kind in ("loguniform", "qloguniform"):
        return _decimal(x, _exponent(x), up=up)
    return _decimal(x, _exponent(width), up=up)


def _exponent(x: float) -> int:
    """The power of ten of the last digit kept for ``x`` (two significant digits)."""
    if x == 0 or not math.isfinite(x):
        return 0
    return math.floor(math.log10(abs(x))) - (_LOG_DIGITS - 1)


def _decimal(x: float, exponent: int, *, up: bool) -> float:
    """``x`` rounded to a multiple of ``10**exponent``, up or down, as a short float."""
    k = math.ceil(x / 10.0**exponent) if up else math.floor(x / 10.0**exponent)
    value = float(f"{k}e{exponent}")
    # x / 10**e is inexact: step once more if it landed on the wrong side of x.
    if up and value < x:
        value = float(f"{k + 1}e{exponent}")
    elif not up and value > x:
        value = float(f"{k - 1}e{exponent}")
    return value


# --- text -----------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A value as the YAML file writes it (``true``, ``0.001``, ``adam``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return format(value, "g") if isinstance(value, float) else str(value)


def _choice_text(values: Sequence[Any]) -> str:
    return f"choice [{', '.join(_text(v) for v in values)}]"


def _range_text(node: Range) -> str:
    return f"{node.kind} [{', '.join(_text(v) for v in node.args())}]"


def _option_text(index: int, option: Params) -> str:
    """An option by its fixed values (``optimizer=sgd``), else by its number (``#2``)."""
    fixed = [f"{name}={_text(node.value)}" for name, node in option if isinstance(node, Fixed)]
    return " ".join(fixed) if fixed else f"#{index}"
