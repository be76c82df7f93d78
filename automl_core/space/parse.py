"""Reading search-space specs (mappings) into space nodes, and back.

A spec maps parameter names to one of:

- a scalar: a fixed value (``optimizer: adam``);
- a list: a choice among plain values (``batch_size: [32, 64]``), or, when every item
  is a mapping, a conditional choice among sub-spaces whose keys are merged into the
  configuration (``optimizer: [{optimizer: sgd, momentum: 0.9}, {optimizer: adam}]``);
- a one-key mapping naming a distribution: ``choice``, ``uniform``, ``loguniform``,
  ``quniform``, ``qloguniform``, ``randint`` or ``log_near_one`` (see ``model.Range``).

Every user mistake raises ``UserInputError`` naming the parameter and the fix.

A mapping is bounded before it is walked (``spec_file.check_bounds``); files are read by
``spec_file.load_spec_file``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from automl_core.errors import UserInputError
from automl_core.space.model import (
    DISTRIBUTIONS,
    QUANTIZED_KINDS,
    RANGE_KINDS,
    Choice,
    Conditional,
    Fixed,
    Node,
    Params,
    Range,
    Scalar,
    labelled,
)
from automl_core.space.spec_file import check_bounds

_VALID = ", ".join(DISTRIBUTIONS)
#: The values ``randint`` may give: numpy's int64 (``Range.sample``).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_params(spec: object) -> Params:
    """The space described by ``spec``, a mapping of parameter name -> spec.

    Raises ``UserInputError`` for a non-mapping or empty top level, a malformed spec, or
    a parameter name that two parameters of one configuration would share.
    """
    if not isinstance(spec, Mapping):
        raise UserInputError(
            f"A search space must be a mapping of parameter name to spec, "
            f"but got {type(spec).__name__}. Write e.g. {{lr: {{loguniform: [0.001, 0.1]}}}}."
        )
    if not spec:
        raise UserInputError("The search space is empty; add at least one parameter.")
    check_bounds(spec, what="The search space")
    params = _parse_mapping(spec, where="")
    _check_unique_names(params, where="the top level")
    _check_unique_labels(params)
    return params


def params_to_dict(params: Params) -> dict[str, Any]:
    """The JSON-serialisable spec of ``params``; ``parse_params`` of it gives ``params`` back."""
    return {name: _node_to_spec(node) for name, node in params}


# --- parsing --------------------------------------------------------------------------


def _parse_mapping(spec: Mapping[Any, Any], where: str) -> Params:
    params: list[tuple[str, Node]] = []
    for name, value in spec.items():
        if not isinstance(name, str) or not name:
            raise UserInputError(
                f"Parameter names must be non-empty strings, but {name!r}{where} is not."
            )
        if name in DISTRIBUTIONS:
            raise UserInputError(
                f"{name!r}{where} is a distribution name, not a parameter name. To draw a "
                f"parameter from it write e.g. lr: {{{name}: [...]}}; do not put it "
                "inside a list."
            )
        params.append((name, _parse_node(name, value, where)))
    return tuple(params)


def _parse_node(name: str, spec: object, where: str) -> Node:
    label = f"{name!r}{where}"
    if isinstance(spec, list):
        return _parse_choice(name, spec, where)
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise UserInputError(
                f"Parameter {label} is a mapping with {len(spec)} keys "
                f"({', '.join(map(str, spec))}), but a distribution takes exactly one key, "
                f"one of: {_VALID}. For a conditional choice, write a list of mappings."
            )
        ((kind, args),) = spec.items()
        if kind == "choice":
            if not isinstance(args, list):
                raise UserInputError(
                    f"Parameter {label}: 'choice' takes a list of options, but got {args!r}."
                )
            return _parse_choice(name, args, where)
        if kind not in RANGE_KINDS:
            raise UserInputError(
                f"Parameter {label} uses the unknown distribution {kind!r}; valid "
                f"distributions are: {_VALID}."
            )
        return _parse_range(label, kind, args)
    return Fixed(_scalar(label, spec))


def _parse_choice(name: str, options: list[Any], where: str) -> Choice | Conditional:
    label = f"{name!r}{where}"
    if not options:
        raise UserInputError(f"Parameter {label} is an empty choice; list at least one value.")
    kinds = {isinstance(option, Mapping) for option in options}
    if kinds == {True}:
        return Conditional(
            tuple(
                _parse_mapping(option, where=f" (in option {i} of {label})")
                for i, option in enumerate(options)
            )
        )
    if len(kinds) == 2:
        raise UserInputError(
            f"Parameter {label} mixes plain values and mappings in one choice. Make every "
            f"option a mapping (a plain value v becomes {{{name}: v}})."
        )
    return Choice(tuple(_scalar(f"{label} (option {i})", v) for i, v in enumerate(options)))


def _scalar(label: str, value: object) -> Scalar:
    if value is None:
        # The trainer reads null as "use the default": a null option would quietly
        # repeat the default as if it were a value of its own.
        raise UserInputError(
            f"Parameter {label} is null, which would silently train with the default "
            "value: give a value, or leave the parameter out to use the default."
        )
    if isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UserInputError(f"Parameter {label} is {value}; use a finite number.")
        return value
    raise UserInputError(
        f"Parameter {label} has the value {value!r} of type {type(value).__name__}; values "
        "must be strings, numbers or booleans (lists of lists are not supported)."
    )


def _parse_range(label: str, kind: str, args: object) -> Range:
    arity = 3 if kind in QUANTIZED_KINDS else 2
    form = "[low, high, q]" if arity == 3 else "[low, high]"
    if not isinstance(args, list) or len(args) != arity:
        raise UserInputError(f"Parameter {label}: {kind} takes {form}, but got {args!r}.")
    for value in args:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserInputError(
                f"Parameter {label}: {kind} takes numbers {form}, but got {args!r}."
            )
        if not _finite_float(value):
            raise UserInputError(
                f"Parameter {label}: {kind} bounds must be finite numbers within float "
                f"range: {args!r}."
            )
    low, high = args[0], args[1]
    q = args[2] if arity == 3 else None
    if not low < high:
        raise UserInputError(
            f"Parameter {label}: {kind} has low = {low} and high = {high}, but low must be "
            "< high. Use a fixed value for a constant."
        )
    if kind == "randint" and not all(isinstance(v, int) for v in (low, high)):
        raise UserInputError(f"Parameter {label}: randint takes integer bounds, but got {args!r}.")
    if kind == "randint" and not (low >= INT64_MIN and high <= INT64_MAX + 1):
        # numpy draws randint as int64 (Range.sample): past it, sampling raised ValueError.
        raise UserInputError(
            f"Parameter {label}: randint {args!r} has a bound outside the 64-bit integer "
            f"range: low must be >= {INT64_MIN} and high (exclusive) <= {INT64_MAX + 1}."
        )
    if kind in ("loguniform", "qloguniform") and low <= 0:
        raise UserInputError(
            f"Parameter {label}: {kind} needs bounds > 0 (it samples their logarithm), "
            f"but low is {low}."
        )
    if kind == "log_near_one" and high >= 1:
        raise UserInputError(
            f"Parameter {label}: log_near_one samples values below 1, so high must be < 1, "
            f"but it is {high}."
        )
    if q is not None and q <= 0:
        raise UserInputError(f"Parameter {label}: {kind} has q = {q}, but q must be > 0.")
    if q is not None and not all(_finite_float(b / q) for b in (low, high)):
        raise UserInputError(
            f"Parameter {label}: {kind} {args!r} has more multiples of q = {q} than a float "
            "can count; make q larger or the range narrower."
        )
    node = Range(kind, low, high, q)
    first, last = node.quantum_steps() if q is not None else (0, 0)
    if first > last:
        raise UserInputError(
            f"Parameter {label}: {kind} {args!r} has no multiple of q = {q} between low and "
            "high, so it has no value to draw; widen the range or make q smaller."
        )
    return node


def _finite_float(value: float) -> bool:
    """True for a number that is a finite float: an int past float range (``10**400``)
    is not, and neither is NaN or infinity."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_unique_names(params: Params, where: str) -> None:
    """Reject a name that two parameters of one configuration could both set.

    Options of one conditional may share names (only one option is ever chosen), but
    names from different parameters of the same mapping, including the names inside
    their options, must be disjoint.
    """
    owner: dict[str, str] = {}
    for name, node in params:
        for produced in sorted(config_names(((name, node),))):
            if produced in owner:
                raise UserInputError(
                    f"The parameter name {produced!r} appears twice at {where} (from "
                    f"{owner[produced]!r} and {name!r}); a configuration can hold it only "
                    "once. Rename one of them or move it into the options."
                )
            owner[produced] = name
        if isinstance(node, Conditional):
            for i, option in enumerate(node.options):
                _check_unique_names(option, where=f"option {i} of {name!r}")


def _check_unique_labels(params: Params) -> None:
    # Labels are `group/option/name` paths; a top-level name containing '/' could
    # collide with one, and hyperopt needs every label to be unique.
    seen: set[str] = set()
    for label, _, _ in labelled(params):
        if label in seen:
            raise UserInputError(
                f"The parameter path {label!r} is ambiguous: a parameter name contains '/'. "
                "Rename it without '/'."
            )
        seen.add(label)


def config_names(params: Params) -> set[str]:
    """Every name a configuration drawn from ``params`` may contain."""
    names: set[str] = set()
    for name, node in params:
        if isinstance(node, Conditional):
            for option in node.options:
                names |= config_names(option)
        else:
            names.add(name)
    return names


# --- back to a spec -------------------------------------------------------------------


def _node_to_spec(node: Node) -> Any:
    if isinstance(node, Fixed):
        return node.value
    if isinstance(node, Choice):
        return list(node.values)
    if isinstance(node, Conditional):
        return [params_to_dict(option) for option in node.options]
    return {node.kind: node.args()}


# --- file loading helpers -------------------------------------------------------------
