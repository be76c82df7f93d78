"""``SearchSpace``: the object every search method and the experiment runner use.

A configuration is always a flat ``dict`` of JSON-serialisable values (Python ``int``,
``float``, ``str``, ``bool`` or ``None``, never numpy scalars). Conditional parameters
contribute the keys of their chosen option; their own name is only a group label.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automl_core.errors import UserInputError
from automl_core.space import parse, spec_file
from automl_core.space.model import (
    QUANTIZED_KINDS,
    Choice,
    Conditional,
    Fixed,
    Node,
    Params,
    Range,
    Scalar,
    labelled,
)


@dataclass(frozen=True)
class SearchSpace:
    """An immutable, validated search space. Build it with ``from_dict`` or ``from_file``."""

    params: Params

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SearchSpace:
        """The space described by ``spec``; raises ``UserInputError`` if it is malformed."""
        return cls(parse.parse_params(spec))

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """The space in a YAML or JSON file; raises ``UserInputError`` for a missing,
        unreadable or malformed file."""
        return cls(parse.parse_params(spec_file.load_spec_file(path)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable spec; ``SearchSpace.from_dict`` of it equals ``self``."""
        return parse.params_to_dict(self.params)

    @property
    def names(self) -> frozenset[str]:
        """Every key a configuration of this space may contain."""
        return frozenset(parse.config_names(self.params))

    def certain_values(self) -> Iterator[tuple[str, str, Scalar]]:
        """``(label, name, value)`` for every value some trial of any search will get.

        That is every fixed value, every option of a choice, and the smallest and largest
        value of an integer or quantized range (a grid and random draws reach both). Values
        inside a continuous range are left out: one bad end (``uniform: [0, 0.1]`` for a
        learning rate) is almost never drawn. Labels are as in ``labelled``.
        """
        for label, name, node in labelled(self.params):
            if isinstance(node, Fixed):
                yield label, name, node.value
            elif isinstance(node, Choice):
                for value in node.values:
                    yield label, name, value
            elif isinstance(node, Range) and node.kind == "randint":
                yield label, name, int(node.low)
                yield label, name, int(node.high) - 1
            elif isinstance(node, Range) and node.kind in QUANTIZED_KINDS:
                yield label, name, node.finish(node.low)
                yield label, name, node.finish(node.high)

    # --- random sampling --------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One configuration drawn with ``rng`` (the only source of randomness).

        Parameters are drawn in the order of the spec; an unchosen option draws nothing,
        so the same generator state always gives the same configuration.
        """
        config: dict[str, Any] = {}
        _sample_into(self.params, rng, config)
        return config

    # --- grid -------------------------------------------------------------------------

    @property
    def is_discrete(self) -> bool:
        """True when the space has a finite grid (no continuous or quantized range)."""
        return _first_range(self.params) is None

    def grid_size(self) -> int:
        """The number of configurations ``grid()`` yields, computed without expanding.

        Raises ``UserInputError`` when the space is not discrete.
        """
        self._require_discrete()
        return _size(self.params)

    def grid(self) -> Iterator[dict[str, Any]]:
        """Every configuration of the full cartesian product, lazily, in a fixed order.

        The first parameter varies slowest; a conditional parameter expands in place into
        the grids of its options, in option order. Raises ``UserInputError`` (before
        yielding anything) when the space is not discrete.
        """
        self._require_discrete()
        return _grid(self.params, 0, {})

    def _require_discrete(self) -> None:
        found = _first_range(self.params)
        if found is not None:
            name, node = found
            raise UserInputError(
                f"Parameter {name!r} is a range ({node.describe()}), which a grid cannot "
                f"enumerate. Use random or hyperopt search, or list the values to try, "
                f"e.g. {name}: [{node.low}, {node.high}]."
            )

    # --- hyperopt ---------------------------------------------------------------------

    def to_hyperopt(self) -> Any:
        """The equivalent hyperopt expression (``hp.*`` nodes with unique labels).

        Evaluating it gives nested dicts; use ``config_from_hyperopt`` on the label
        assignment (``misc['vals']``) to get the flat configuration.
        """
        from automl_core.space.hyperopt_convert import to_hyperopt

        return to_hyperopt(self.params)

    def config_from_hyperopt(self, vals: Mapping[str, Any]) -> dict[str, Any]:
        """The flat configuration for hyperopt's index-encoded assignment.

        ``vals`` maps labels to values, either plain (``{'lr': 0.01}``) or as stored in
        a trial's ``misc['vals']`` (``{'lr': [0.01], 'momentum': []}``). The result
        equals what ``sample`` would give for the same draw (integers stay ``int``).
        Raises ``UserInputError`` when a label the chosen path needs is missing.
        """
        from automl_core.space.hyperopt_convert import config_from_vals

        return config_from_vals(self.params, vals)

    def hyperopt_vals(self, config: Mapping[str, Any]) -> dict[str, list[Any]]:
        """The ``misc['vals']`` of a trial that produced ``config``: every label of the
        space, ``[value]`` when active and ``[]`` when in an unchosen option.

        Keys the space does not produce are ignored (a runner may annotate configs).
        Raises ``UserInputError`` when ``config`` cannot come from this space.
        """
        from automl_core.space.hyperopt_convert import vals_from_config

        return vals_from_config(self.params, config)

    def contains(self, config: Mapping[str, Any]) -> bool:
        """True when ``config`` could have been drawn from this space, with no extra keys."""
        from automl_core.space.hyperopt_convert import vals_from_config

        try:
            vals_from_config(self.params, config, strict=True)
        except UserInputError:
            return False
        return True


# --- traversal helpers ------------------------------------------------------------------


def _sample_into(params: Params, rng: np.random.Generator, config: dict[str, Any]) -> None:
    for name, node in params:
        if isinstance(node, Fixed):
            config[name] = node.value
        elif isinstance(node, Choice):
            config[name] = node.values[int(rng.integers(len(node.values)))]
        elif isinstance(node, Conditional):
            option = node.options[int(rng.integers(len(node.options)))]
            _sample_into(option, rng, config)
        else:
            config[name] = node.sample(rng)


def _first_range(params: Params) -> tuple[str, Range] | None:
    """The first parameter that is a range other than ``randint`` (which is finite)."""
    for name, node in params:
        if isinstance(node, Range) and node.kind != "randint":
            return name, node
        if isinstance(node, Conditional):
            for option in node.options:
                found = _first_range(option)
                if found is not None:
                    return found
    return None


def _node_size(node: Node) -> int:
    if isinstance(node, Fixed):
        return 1
    if isinstance(node, Choice):
        return len(node.values)
    if isinstance(node, Conditional):
        return sum(_size(option) for option in node.options)
    return int(node.high) - int(node.low)  # randint: high is exclusive


def _size(params: Params) -> int:
    return math.prod(_node_size(node) for _, node in params)


def _node_values(name: str, node: Node) -> Iterator[dict[str, Any]]:
    """The partial configurations one parameter contributes to the grid, in order."""
    if isinstance(node, Fixed):
        yield {name: node.value}
    elif isinstance(node, Choice):
        for value in node.values:
            yield {name: value}
    elif isinstance(node, Conditional):
        for option in node.options:
            yield from _grid(option, 0, {})
    else:
        for value in range(int(node.low), int(node.high)):
            yield {name: value}


def _grid(params: Params, index: int, prefix: dict[str, Any]) -> Iterator[dict[str, Any]]:
    # Recursion over parameters (not itertools.product) keeps every option's sub-grid
    # lazy, so a large conditional grid is never materialised.
    if index == len(params):
        yield dict(prefix)
        return
    name, node = params[index]
    for partial in _node_values(name, node):
        yield from _grid(params, index + 1, {**prefix, **partial})
