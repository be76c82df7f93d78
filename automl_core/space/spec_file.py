"""Reading search-space files (YAML and JSON) within bounds, before anything walks them.

A file is held to ``MAX_FILE_BYTES`` before it is parsed, and a document to at most
``MAX_DEPTH`` levels of nesting and ``MAX_NODES`` values counted as if every YAML alias
were written out (``check_bounds``; YAML also while it is composed), so a huge file, a
deeply nested list or a "billion laughs" document of aliases is refused at once instead
of exhausting the stack, the memory or the clock. YAML is read with the safe loader
(PyYAML), with two fixes: exponent floats without a dot (``1e-3``) are numbers, and a key
repeated in one mapping is an error instead of silently keeping the last one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from automl_core.errors import UserInputError

#: Nesting levels a space may have (each conditional choice takes two: list and mapping).
MAX_DEPTH = 32
#: Values (mappings, lists and scalars) a space may hold, aliases counted as written out.
MAX_NODES = 100_000
#: YAML aliases (``*name``) a space file may use.
MAX_ALIASES = 1_000
#: Bytes a space file (or YAML document) may have: a space is a few kilobytes, and
#: ``MAX_NODES`` short values fit in well under this; PyYAML reads ~100 KB/s, so a file
#: this size is parsed (or refused) in seconds rather than minutes.
MAX_FILE_BYTES = 1 << 20


def load_spec_file(path: str | Path) -> object:
    """The parsed content of a YAML (``.yaml``/``.yml``) or JSON (``.json``) file.

    YAML is read with the safe loader, with two fixes: exponent floats without a dot
    (``1e-3``) are numbers, not strings, and a key repeated in one mapping is an error
    instead of silently keeping the last one. Both formats are held to ``MAX_FILE_BYTES``
    (before parsing), ``MAX_DEPTH``, ``MAX_NODES`` and (YAML) ``MAX_ALIASES``.
    Raises ``UserInputError`` when the file does not exist, cannot be parsed or is too
    deep or too large.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"The search-space file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    what = f"The search-space file {str(path)!r}"
    with path.open("rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)  # never more, even if the file grows meanwhile
    if len(data) > MAX_FILE_BYTES:
        raise _too_big(what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserInputError(f"The search-space file {str(path)!r} is not UTF-8 text.") from None
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


def load_yaml_text(text: str, *, what: str) -> object:
    """The YAML document ``text`` read with the space loader (see ``load_spec_file``).

    ``what`` names the document in errors (e.g. "The search-space file 'a.yaml'").
    Raises ``UserInputError`` for a text of more than ``MAX_FILE_BYTES`` (UTF-8), invalid
    YAML, a repeated key, more than ``MAX_DEPTH`` levels, more than ``MAX_ALIASES``
    aliases, a recursive alias or more than ``MAX_NODES`` values (aliases written out).
    """
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise _too_big(what)
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
    shared = False  # a list or mapping reached twice: what aliases make
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
                raise _too_many(what, aliases=shared)
            sizes[key] = (count, depth)
            continue
        if not children:
            continue
        if key in sizes:
            shared = True
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
        for child in children:
            if id(child) not in sizes:
                stack.append((child, False))
            elif _children(child):
                shared = True


def _children(value: object) -> list[object]:
    if isinstance(value, Mapping):
        return [*value.keys(), *value.values()]
    if isinstance(value, list | tuple):
        return list(value)
    return []


def _too_many(what: str, *, aliases: bool) -> UserInputError:
    if aliases:
        return UserInputError(
            f"{what} holds more than {MAX_NODES:,} values once its aliases are written out: "
            "list the values to try directly, without nested aliases."
        )
    return UserInputError(
        f"{what} holds more than {MAX_NODES:,} values: a search tries a few values per "
        "parameter; list fewer, or use a range (e.g. {randint: [0, 1000]}) for many."
    )


def _too_big(what: str) -> UserInputError:
    return UserInputError(
        f"{what} is larger than {MAX_FILE_BYTES:,} bytes, the limit for a space (one is a few "
        "kilobytes): list fewer values, or use ranges (uniform, randint) for many."
    )


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
    _nodes = 0

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
        else:  # each value written in the file: too many is refused before the rest is read
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise _too_many(self.what, aliases=False)
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
