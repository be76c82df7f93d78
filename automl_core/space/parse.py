"""Reading search-space specs (mappings, YAML and JSON files) into space nodes, and back.

A spec maps parameter names to one of:

- a scalar: a fixed value (``optimizer: adam``);
- a list: a choice among plain values (``batch_size: [32, 64]``), or, when every item
  is a mapping, a conditional choice among sub-spaces whose keys are merged into the
  configuration (``optimizer: [{optimizer: sgd, momentum: 0.9}, {optimizer: adam}]``);
- a one-key mapping naming a distribution: ``choice``, ``uniform``, ``loguniform``,
  ``quniform``, ``qloguniform``, ``randint`` or ``log_near_one`` (see ``model.Range``).

Every user mistake raises ``UserInputError`` naming the parameter and the fix.

Files and mappings are bounded before they are walked (``check_bounds``): at most
``MAX_DEPTH`` levels of nesting and ``MAX_NODES`` values counted as if every YAML alias
were written out, so a deeply nested list or a "billion laughs" document of aliases is
refused at once instead of exhausting the stack, the memory or the clock.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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

_VALID = ", ".join(DISTRIBUTIONS)

#: Nesting levels a space may have (each conditional choice takes two: list and mapping).
MAX_DEPTH = 32
#: Values (mappings, lists and scalars) a space may hold, aliases counted as written out.
MAX_NODES = 100_000
#: YAML aliases (``*name``) a space file may use.
MAX_ALIASES = 1_000


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


def load_spec_file(path: str | Path) -> object:
    """The parsed content of a YAML (``.yaml``/``.yml``) or JSON (``.json``) file.

    YAML is read with the safe loader, with two fixes: exponent floats without a dot
    (``1e-3``) are numbers, not strings, and a key repeated in one mapping is an error
    instead of silently keeping the last one. Both formats are held to ``MAX_DEPTH``,
    ``MAX_NODES`` and (YAML) ``MAX_ALIASES``.
    Raises ``UserInputError`` when the file does not exist, cannot be parsed or is too
    deep or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"The search-space file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"The search-space file {str(path)!r} is not UTF-8 text.") from None
    what = f"The search-space file {str(path)!r}"
    if suffix == ".json":
        try:
            value = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{what} is not valid JSON: {exc}.") from None
        except RecursionError:
            # The C scanner recurses once per level: only a document far deeper than
            # MAX_DEPTH gets here.
            raise _too_deep(what) from None
        check_bounds(value, what=what)
        return value
    if suffix in (".yaml", ".yml"):
        return load_yaml_text(text, what=what)
    raise UserInputError(
        f"The search-space file {str(path)!r} has the suffix {suffix or '(none)'!r}; "
        "use .yaml, .yml or .json."
    )


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
        if not math.isfinite(value):
            raise UserInputError(f"Parameter {label}: {kind} bounds must be finite: {args!r}.")
    low, high = args[0], args[1]
    q = args[2] if arity == 3 else None
    if not low < high:
        raise UserInputError(
            f"Parameter {label}: {kind} has low = {low} and high = {high}, but low must be "
            "< high. Use a fixed value for a constant."
        )
    if kind == "randint" and not all(isinstance(v, int) for v in (low, high)):
        raise UserInputError(f"Parameter {label}: randint takes integer bounds, but got {args!r}.")
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
    if q is not None and math.ceil(low / q) * q > high:
        raise UserInputError(
            f"Parameter {label}: {kind} {args!r} has no multiple of q = {q} between low and "
            "high, so it has no value to draw; widen the range or make q smaller."
        )
    return Range(kind, low, high, q)


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


def load_yaml_text(text: str, *, what: str) -> object:
    """The YAML document ``text`` read with the space loader (see ``load_spec_file``).

    ``what`` names the document in errors (e.g. "The search-space file 'a.yaml'").
    Raises ``UserInputError`` for invalid YAML, a repeated key, more than ``MAX_DEPTH``
    levels, more than ``MAX_ALIASES`` aliases, a recursive alias or more than
    ``MAX_NODES`` values once aliases are written out.
    """
    try:
        # _SpaceLoader is a SafeLoader subclass: it builds no arbitrary Python objects.
        loader = _SpaceLoader(text)
        loader.what = what
        try:
            value = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise UserInputError(f"{what} is not valid YAML: {_one_line(exc)}.") from None
    check_bounds(value, what=what)
    return value


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's problem and where it is, without the multi-line excerpt it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        context = f"{exc.context}, " if exc.context else ""
        return f"{context}{exc.problem}{where}"
    return " ".join(str(exc).split())


def check_bounds(value: object, *, what: str) -> None:
    """Refuse ``value`` (parsed YAML/JSON) if it nests deeper than ``MAX_DEPTH`` levels,
    holds more than ``MAX_NODES`` values or refers to itself.

    Values shared by reference (what YAML aliases make) count once per reference, as
    every later step walks them as a tree; each is measured once here, so a document
    that would expand to billions of values is refused in time linear in its size.
    Raises ``UserInputError`` naming ``what``.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (expanded values, depth)
    open_ids: set[int] = set()
    stack: list[tuple[object, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        key = id(item)
        children = _children(item)
        if children_done:
            open_ids.discard(key)
            count, depth = 1, 1
            for child in children:
                child_count, child_depth = sizes.get(id(child), (1, 1))
                count += child_count
                depth = max(depth, child_depth + 1)
            if depth > MAX_DEPTH:
                raise _too_deep(what)
            if count > MAX_NODES:
                raise UserInputError(
                    f"{what} holds more than {MAX_NODES:,} values once its aliases are "
                    "written out: list the values to try directly, without nested aliases."
                )
            sizes[key] = (count, depth)
            continue
        if key in sizes or not children:
            continue
        if key in open_ids:
            raise UserInputError(
                f"{what} refers to itself (a YAML alias inside its own anchor): write the "
                "values out."
            )
        if len(open_ids) >= MAX_DEPTH:
            raise _too_deep(what)
        open_ids.add(key)
        stack.append((item, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(value: object) -> list[object]:
    if isinstance(value, Mapping):
        return [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        return list(value)
    return []


def _too_deep(what: str) -> UserInputError:
    return UserInputError(
        f"{what} nests lists and mappings more than {MAX_DEPTH} levels deep: a space needs "
        "a few levels (parameter, choice, option); flatten it."
    )


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise UserInputError(
                f"The parameter name {key!r} appears twice in one JSON object; keep one."
            )
        result[key] = value
    return result


class _SpaceLoader(yaml.SafeLoader):
    """SafeLoader that rejects repeated keys, deep nesting and many aliases, and reads
    ``1e-3`` as a float."""

    what = "The YAML document"
    _depth = 0
    _aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # PyYAML composes by recursion: count levels before a deep document overflows
        # the stack, and aliases before they multiply a small file into a huge tree.
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise UserInputError(
                    f"{self.what} uses more than {MAX_ALIASES} YAML aliases (*name): write "
                    "the values out instead."
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _too_deep(self.what)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: _SpaceLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise UserInputError(
                f"The parameter name {key!r} appears twice in one mapping (line "
                f"{key_node.start_mark.line + 1}); keep one."
            )
        seen.add(key)
    return dict(loader.construct_pairs(node, deep=True))


_SpaceLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) needs a dot in a float, so `1e-3` would silently load as a string.
_SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)
