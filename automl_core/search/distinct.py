"""Distinct configurations: what "the same configuration" means, and proposing none twice.

Every search method proposes each configuration at most once per experiment: a repeat
would train the same model again and waste its budget. Two configurations are the same
when they have the same keys and equal values, with ``1 == 1.0`` (a JSON column may
return an integral float as an int) but ``True != 1`` (``automl_core.space.model.same_value``).

- ``config_key``: a hashable key with exactly that equality.
- ``distinct_grid``/``distinct_grid_size``: a grid without repeats (``[32, 32, 64]``
  or two conditional options that expand to the same configuration), in grid order.
- ``sample_distinct``: ``n`` draws that repeat neither each other nor ``exclude``.
- ``distinct_points``: every configuration of a finite space (choices, ``randint`` and
  quantized ranges only), when it has no more than a given number.
- ``require_distinct``: the check made before anything is written: a space with fewer
  distinct configurations than a search asks for is an error naming both numbers.

Pure functions of their arguments: the only randomness is the generator passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from automl_core.errors import SpaceTooSmallError
from automl_core.space import SearchSpace
from automl_core.space.model import Choice, Conditional, Fixed, Params, Range

ConfigKey = tuple[tuple[str, tuple[str, Any]], ...]

#: Draws in a row that may bring nothing new before ``sample_distinct`` stops sampling
#: and picks from the enumerated remainder of a finite space instead.
MAX_MISSES = 1000
#: The most configurations ``sample_distinct`` enumerates for that fallback.
ENUMERATION_LIMIT = 100_000


def _value_key(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)  # 1 and 1.0 are equal and hash alike
    if value is None:
        return ("none", None)
    if isinstance(value, str):
        return ("str", value)
    return ("other", repr(value))


def config_key(config: Mapping[str, Any]) -> ConfigKey:
    """A hashable key; two configurations are the same exactly when their keys are equal."""
    return tuple(sorted((str(name), _value_key(value)) for name, value in config.items()))


def distinct_grid(space: SearchSpace) -> Iterator[dict[str, Any]]:
    """``space.grid()`` without repeats, first occurrences in grid order.

    Raises ``UserInputError`` (before yielding) when the space is not discrete.
    """
    grid = space.grid()  # validates before the first value is asked for
    return _unique(grid)


def _unique(configs: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    seen: set[ConfigKey] = set()
    for config in configs:
        key = config_key(config)
        if key not in seen:
            seen.add(key)
            yield config


def distinct_grid_size(space: SearchSpace) -> int:
    """How many configurations ``distinct_grid`` yields.

    Computed without expanding when no choice repeats a value and no conditional could
    expand two options to the same configuration; otherwise by walking the grid.
    Raises ``UserInputError`` when the space is not discrete.
    """
    size = space.grid_size()
    if not _may_repeat(space.params):
        return size
    return sum(1 for _ in distinct_grid(space))


def _may_repeat(params: Params) -> bool:
    for _, node in params:
        if isinstance(node, Choice) and len({_value_key(v) for v in node.values}) < len(
            node.values
        ):
            return True
        if isinstance(node, Conditional) and (
            len(node.options) > 1 or any(_may_repeat(o) for o in node.options)
        ):
            return True
    return False


def distinct_points(space: SearchSpace, limit: int) -> list[dict[str, Any]] | None:
    """Every distinct configuration of ``space`` if it has at most ``limit``; else None.

    None also when the space has a continuous range (``uniform``, ``loguniform``,
    ``log_near_one``): it has infinitely many. ``randint`` and quantized ranges are
    finite: a quantized range takes the multiples of ``q`` inside ``[low, high]``
    (``Range.finish``), so the values listed are exactly those sampling gives.
    """
    finite = _as_choices(space.params, limit)
    if finite is None:
        return None
    points: list[dict[str, Any]] = []
    for config in _unique(SearchSpace(finite).grid()):
        if len(points) == limit:
            return None
        points.append(config)
    return points


def _as_choices(params: Params, limit: int) -> Params | None:
    """``params`` with every finite range listed as a choice; None if one has > ``limit``."""
    out: list[tuple[str, Any]] = []
    for name, node in params:
        if isinstance(node, Range):
            values = _range_values(node, limit)
            if values is None:
                return None
            out.append((name, Choice(tuple(values))))
        elif isinstance(node, Conditional):
            options = [_as_choices(option, limit) for option in node.options]
            if any(option is None for option in options):
                return None
            out.append((name, Conditional(tuple(o for o in options if o is not None))))
        else:
            assert isinstance(node, Fixed | Choice)
            out.append((name, node))
    return tuple(out)


def _range_values(node: Range, limit: int) -> list[int | float] | None:
    """The values a finite range takes (None when continuous or more than ``limit``)."""
    if node.kind == "randint":
        first, stop = int(node.low), int(node.high)
    elif node.q is not None:
        first, last = node.quantum_steps()
        stop = last + 1
    else:
        return None
    if stop - first > limit:
        return None  # this one parameter alone gives more than ``limit`` configurations
    if node.kind == "randint":
        return list(range(first, stop))
    values = (node.finish(float(k * node.q)) for k in range(first, stop))  # type: ignore[operator]
    return list(dict.fromkeys(values))


def sample_distinct(
    space: SearchSpace,
    n: int,
    rng: np.random.Generator,
    exclude: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """``n`` configurations drawn with ``rng``, none equal to another or to ``exclude``.

    Draws ``space.sample(rng)`` and skips repeats, so where nothing repeats the result
    is the plain sequence of draws. After ``MAX_MISSES`` repeats in a row (a nearly
    exhausted finite space), the rest are picked with ``rng`` from the configurations
    not yet taken. Deterministic for a given generator state.

    Raises ``SpaceTooSmallError`` (a ``UserInputError``) when the space has fewer than
    ``n`` configurations besides ``exclude``.
    """
    seen = {config_key(c) for c in exclude}
    taken: list[dict[str, Any]] = []
    misses = 0
    while len(taken) < n and misses < MAX_MISSES:
        config = space.sample(rng)
        key = config_key(config)
        if key in seen:
            misses += 1
            continue
        seen.add(key)
        taken.append(config)
        misses = 0
    if len(taken) < n:
        points = distinct_points(space, ENUMERATION_LIMIT) or []
        rest = [p for p in points if config_key(p) not in seen]
        need = n - len(taken)
        if len(rest) < need:
            raise SpaceTooSmallError(
                f"The search space has only {len(taken) + len(rest)} distinct configurations "
                f"besides the {len(seen) - len(taken)} already taken, but {n} were asked "
                "for: ask for fewer trials or add values to the space."
            )
        order = rng.permutation(len(rest))[:need]
        taken.extend(rest[int(i)] for i in order)
    return taken


def require_distinct(space: SearchSpace, needed: int, what: str) -> None:
    """Raise ``SpaceTooSmallError`` (a ``UserInputError``) when ``space`` has fewer than
    ``needed`` configurations.

    ``what`` names the request in the message, e.g. ``"random search with n=10"``.
    A space with a continuous range always has enough.
    """
    if needed < 1:
        return
    points = distinct_points(space, needed - 1)
    if points is None:
        return
    raise SpaceTooSmallError(
        f"The search space has {len(points)} distinct configuration"
        f"{'' if len(points) == 1 else 's'}, but {what} asks for {needed} different ones: "
        "ask for fewer trials, add values or a range to the space, or use grid search, "
        "which trains each configuration once."
    )
