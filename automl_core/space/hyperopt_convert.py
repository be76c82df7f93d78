"""Between a search space and hyperopt: the ``hp`` expression, and label assignments.

hyperopt describes a point by its *assignment*: label -> value, where a choice stores
the index of the option, and a trial's ``misc['vals']`` wraps each value in a list
(``[]`` for a label in an unchosen option). Labels come from ``model.labelled``.

How each range is stored in an assignment (the "raw" value hyperopt samples):

==============  =========================================  ==========================
kind            hp expression                              raw value in vals
==============  =========================================  ==========================
uniform         hp.uniform(l, low, high)                   the value
loguniform      hp.loguniform(l, ln low, ln high)          the value
quniform        hp.quniform(l, low, high, q)               the value (a float)
qloguniform     hp.qloguniform(l, ln low, ln high, q)      the value (a float)
randint         hp.randint(l, high - low) + low            value - low (0-based)
  (wide)        int(hp.quniform(l, 0, high-low-1, 1))+low  value - low (0-based)
log_near_one    1 - hp.loguniform(l, ln(1-high), ln(1-low)) 1 - value
==============  =========================================  ==========================

``randint`` is kept 0-based on purpose: hyperopt's two-argument randint relies on an
offset special case inside TPE; the one-argument form has none. A range of more than
``CATEGORICAL_RANDINT_MAX`` integers is a quantized uniform over the same offsets: TPE
treats ``hp.randint`` as one category per value, and every proposal builds arrays as
long as the range (a review measured 31.7 s and 1.36 GB for a batch over 10**7 values);
over so many integers an ordered model is the better one anyway. Its two end values get
half the weight of the others (``round`` of a uniform), a bias of under 0.1%.
hyperopt is imported inside ``to_hyperopt`` only (it takes ~1 s to import).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from automl_core.errors import UserInputError
from automl_core.space.model import (
    Choice,
    Conditional,
    Fixed,
    Params,
    Range,
    labelled,
    same_value,
)


class _Mismatch(Exception):
    """Internal: a configuration does not fit a part of the space (message says why)."""


# --- space -> hp expression ---------------------------------------------------------

# Wider randint ranges are quantized uniforms for TPE (see the module docstring).
CATEGORICAL_RANDINT_MAX = 1000


def to_hyperopt(params: Params, prefix: str = "") -> dict[str, Any]:
    """A hyperopt expression for ``params``: a dict of ``hp`` nodes and fixed values.

    A conditional parameter becomes ``hp.choice`` over the options' own dicts, so
    evaluating the expression gives nested dicts (keyed by parameter names).
    """
    from hyperopt import hp
    from hyperopt.pyll import scope

    expr: dict[str, Any] = {}
    for name, node in params:
        label = f"{prefix}/{name}" if prefix else name
        if isinstance(node, Fixed):
            expr[name] = node.value
        elif isinstance(node, Choice):
            expr[name] = hp.choice(label, list(node.values))
        elif isinstance(node, Conditional):
            expr[name] = hp.choice(
                label,
                [to_hyperopt(option, f"{label}/{i}") for i, option in enumerate(node.options)],
            )
        else:
            expr[name] = _range_expr(hp, scope, label, node)
    return expr


def _range_expr(hp: Any, scope: Any, label: str, node: Range) -> Any:
    low, high, q = node.low, node.high, node.q
    if node.kind == "uniform":
        return hp.uniform(label, low, high)
    if node.kind == "loguniform":
        return hp.loguniform(label, math.log(low), math.log(high))
    if node.kind == "randint":
        width = int(high) - int(low)
        if width > CATEGORICAL_RANDINT_MAX:
            return scope.int(hp.quniform(label, 0, width - 1, 1)) + int(low)
        return hp.randint(label, width) + int(low)
    if node.kind == "log_near_one":
        return 1 - hp.loguniform(label, math.log(1 - high), math.log(1 - low))
    if node.kind == "quniform":
        expr = hp.quniform(label, low, high, q)
    else:
        expr = hp.qloguniform(label, math.log(low), math.log(high), q)
    return scope.int(expr) if node.integral else expr


# --- assignment -> configuration ----------------------------------------------------


def config_from_vals(params: Params, vals: Mapping[str, Any]) -> dict[str, Any]:
    """The flat configuration that the assignment ``vals`` describes.

    Accepts plain (``{'lr': 0.1}``) and list-wrapped (``{'lr': [0.1]}``) assignments.
    Labels of unchosen options are ignored. Raises ``UserInputError`` when an active
    label is missing or an index is out of range.
    """
    config: dict[str, Any] = {}
    _decode(params, "", vals, config)
    return config


def _decode(params: Params, prefix: str, vals: Mapping[str, Any], config: dict[str, Any]) -> None:
    for name, node in params:
        label = f"{prefix}/{name}" if prefix else name
        if isinstance(node, Fixed):
            config[name] = node.value
            continue
        raw = _raw(vals, label)
        if isinstance(node, Choice):
            config[name] = node.values[_index(label, raw, len(node.values))]
        elif isinstance(node, Conditional):
            i = _index(label, raw, len(node.options))
            _decode(node.options[i], f"{label}/{i}", vals, config)
        else:
            config[name] = decode_range(node, raw)


def _raw(vals: Mapping[str, Any], label: str) -> Any:
    if label not in vals:
        raise UserInputError(f"The hyperopt assignment has no value for {label!r}.")
    value = vals[label]
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise UserInputError(
                f"The hyperopt assignment has {len(value)} values for the active label "
                f"{label!r}; expected one."
            )
        value = value[0]
    return value


def _index(label: str, raw: Any, size: int) -> int:
    try:
        index = int(raw)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < size or index != raw:
        raise UserInputError(
            f"The hyperopt assignment gives index {raw!r} for {label!r}, which has {size} options."
        )
    return index


def decode_range(node: Range, raw: Any) -> int | float:
    """The configuration value for the raw value hyperopt stored (see the module table)."""
    if node.kind == "randint":
        return int(node.low) + int(round(float(raw)))  # a wide range's raw is a float
    if node.kind == "log_near_one":
        return float(1.0 - float(raw))
    return node.finish(float(raw))


def encode_range(node: Range, value: Any) -> int | float:
    """The raw value hyperopt stores for a configuration value; inverse of ``decode_range``."""
    if node.kind == "randint":
        return int(value) - int(node.low)
    if node.kind == "log_near_one":
        return float(1.0 - float(value))
    return float(value)


# --- configuration -> assignment ----------------------------------------------------


def vals_from_config(
    params: Params, config: Mapping[str, Any], *, strict: bool = False
) -> dict[str, list[Any]]:
    """The ``misc['vals']`` for ``config``: every hyperopt label (fixed values have
    none), ``[raw]`` if active, ``[]`` if in an unchosen option.

    For a conditional parameter the option that fits ``config`` is found by matching
    (fixed values equal, values among the choices, numbers inside the ranges); when
    several fit, the one that explains the most keys wins, then the first. With
    ``strict`` a key the space cannot produce is an error; without, it is ignored (a
    runner may annotate configurations). Raises ``UserInputError`` when ``config``
    does not fit the space.
    """
    # hyperopt labels only its stochastic nodes; a fixed value has no label.
    vals: dict[str, list[Any]] = {
        label: [] for label, _, node in labelled(params) if not isinstance(node, Fixed)
    }
    try:
        used = _match(params, "", config, vals)
    except _Mismatch as exc:
        raise UserInputError(
            f"The configuration {dict(config)!r} does not belong to the search space: {exc}."
        ) from None
    extra = sorted(set(config) - used)
    if strict and extra:
        raise UserInputError(
            f"The configuration {dict(config)!r} has keys the search space does not "
            f"produce: {', '.join(extra)}."
        )
    return vals


def _match(
    params: Params, prefix: str, config: Mapping[str, Any], vals: dict[str, list[Any]]
) -> set[str]:
    """Fill ``vals`` for ``params`` from ``config``; return the keys explained."""
    used: set[str] = set()
    for name, node in params:
        label = f"{prefix}/{name}" if prefix else name
        if isinstance(node, Conditional):
            index, option_vals, option_used = _match_option(label, node, config)
            vals[label] = [index]
            vals.update(option_vals)
            used |= option_used
            continue
        if name not in config:
            raise _Mismatch(f"it has no {name!r}")
        value = config[name]
        used.add(name)
        if isinstance(node, Fixed):
            if not same_value(value, node.value):
                raise _Mismatch(f"{name!r} is {value!r}, but the space fixes it to {node.value!r}")
        elif isinstance(node, Choice):
            matches = [i for i, option in enumerate(node.values) if same_value(value, option)]
            if not matches:
                raise _Mismatch(f"{name!r} is {value!r}, not one of {list(node.values)!r}")
            vals[label] = [matches[0]]
        else:
            if not node.contains(value):
                raise _Mismatch(f"{name!r} is {value!r}, outside {node.describe()}")
            vals[label] = [encode_range(node, value)]
    return used


def _match_option(
    label: str, node: Conditional, config: Mapping[str, Any]
) -> tuple[int, dict[str, list[Any]], set[str]]:
    best: tuple[int, dict[str, list[Any]], set[str]] | None = None
    reasons: list[str] = []
    for i, option in enumerate(node.options):
        option_vals: dict[str, list[Any]] = {}
        try:
            option_used = _match(option, f"{label}/{i}", config, option_vals)
        except _Mismatch as exc:
            reasons.append(f"option {i}: {exc}")
            continue
        if best is None or len(option_used) > len(best[2]):
            best = (i, option_vals, option_used)
    if best is None:
        raise _Mismatch(f"no option of {label!r} fits ({'; '.join(reasons)})")
    return best
