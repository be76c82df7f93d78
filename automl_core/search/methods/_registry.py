"""The method registry: one ``SearchMethod`` per name, with its budget knobs.

Everything that knows what a method is reads it from here: ``SearchRequest.validate``
and ``spec`` (automl_core.experiment.request), the search plan and proposals
(automl_core.experiment.plan), the ``automl run`` options, the DAG spec loader and the
run form (automl_airflow). Adding a method is one entry and one ``register`` call.

A knob name is one meaning everywhere: two methods that share ``epochs`` share the very
same ``Knob`` (default, limits, help), and ``register`` refuses a second, different one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from automl_core.errors import UserInputError
from automl_core.search.groups import PlanGroup
from automl_core.space import SearchSpace

Config = dict[str, Any]
#: The told trials whose ids are below the given one, ``(config, metric)`` in id order
#: (a narrowed search's parent trials first); ``None`` marks a failed trial.
History = Callable[[int], Sequence[tuple[Config, float | None]]]


@dataclass(frozen=True)
class Knob:
    """One budget knob: a ``SearchRequest`` field, a spec ``budget`` key, a CLI option.

    ``limits`` (inclusive) is None when the method checks the value itself (it depends on
    other knobs). ``shapes_plan``: the value fixes the plan's groups, hence the DAG's
    shape, so a DAG takes it from its spec only; otherwise it is also a run-form field
    (``title``, ``description``). ``in_spec``: a DAG spec may set it.
    """

    name: str
    default: int | None
    limits: tuple[int, int] | None
    help: str
    shapes_plan: bool = True
    in_spec: bool = True
    title: str = ""
    description: str = ""

    def check(self, value: object, *, label: str | None = None) -> int:
        """``value`` if it is an integer within ``limits``; else ``UserInputError`` naming
        ``label`` (default: the knob's name) and the range."""
        low, high = self.limits or (-(2**63), 2**63 - 1)
        # bool is an int in Python; "true" for a budget is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise UserInputError(
                f"The value of {label or self.name} is {value!r}, but must be an integer "
                f"from {low} to {high}."
            )
        return value


@dataclass(frozen=True)
class Setup:
    """What a method plans and proposes from: the space, its knobs' values, the seed."""

    space: SearchSpace
    budget: Mapping[str, int | None]
    seed: int

    def value(self, name: str) -> int:
        """The value of knob ``name``; ``KeyError`` when it has none (unset, no default)."""
        value = self.budget.get(name)
        if value is None:
            raise KeyError(f"knob {name!r} has no value")
        return value


@dataclass(frozen=True)
class Promotion:
    """A rung's decision: the trials promoted (best first) and why, in words."""

    survivors: list[int]
    reason: str


class SearchMethod(ABC):
    """One search method: its knobs, its plan and its proposals (pure, seeded, no I/O).

    Subclasses set ``name``, ``title`` (for help texts) and ``knobs``; ``narrowable`` is
    False when a narrowed space would change the plan's shape (a grid's batches follow
    its size).
    """

    name: str
    title: str
    knobs: tuple[Knob, ...]
    narrowable: bool = True

    def check(self, setup: Setup) -> None:
        """Raise ``UserInputError`` when ``setup.space`` cannot give the budget what it
        asks for (the knobs are within their limits already). Default: nothing to check."""
        return None

    @abstractmethod
    def plan(self, setup: Setup) -> tuple[PlanGroup, ...]:
        """The groups of the search, in the order a user sees them."""

    @abstractmethod
    def propose(self, setup: Setup, group: PlanGroup, history: History) -> list[tuple[int, Config]]:
        """``(trial_id, config)`` of the trials ``group`` starts with (rung 0).

        The same setup and history give the same trials, whichever group ran first.
        """

    def promote(
        self, group: PlanGroup, rung: int, scores: Sequence[tuple[int, float | None]]
    ) -> Promotion:
        """Which trials of ``rung`` train on. Raises ``UserInputError`` for a method whose
        groups do not promote."""
        raise UserInputError(f"Method {self.name!r} has no rungs to promote.")

    def knob(self, name: str) -> Knob:
        """This method's knob ``name``; ``KeyError`` when it has none."""
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise KeyError(f"method {self.name!r} has no knob {name!r}")

    def stored_budget(self, budget: Mapping[str, int | None]) -> dict[str, int]:
        """The knob values that define an experiment (its stored spec): every knob with a
        value; one whose default is None is stored only when set, so older specs match."""
        values = {k.name: budget.get(k.name, k.default) for k in self.knobs}
        return {name: value for name, value in values.items() if value is not None}


_METHODS: dict[str, SearchMethod] = {}


def register(method: SearchMethod) -> SearchMethod:
    """Add ``method`` under ``method.name`` (replacing one of that name); returns it.

    Raises ``ValueError`` when one of its knobs has the name of another method's knob
    but differs from it.
    """
    for knob in method.knobs:
        other = find_knob(knob.name)
        if other is not None and other != knob:
            raise ValueError(f"knob {knob.name!r} of {method.name!r} differs from {other!r}")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove the method ``name`` (a test's own); nothing when there is none."""
    _METHODS.pop(name, None)


def method_names() -> tuple[str, ...]:
    """Registered method names, in registration order."""
    return tuple(_METHODS)


def get_method(name: object) -> SearchMethod:
    """The method registered as ``name``; ``UserInputError`` listing the names otherwise."""
    if isinstance(name, str) and name in _METHODS:
        return _METHODS[name]
    raise UserInputError(
        f"The value of method is {name!r}, but must be one of {', '.join(_METHODS)}."
    )


def all_knobs() -> tuple[Knob, ...]:
    """Every registered knob once, in the order the methods list them."""
    seen: dict[str, Knob] = {}
    for method in _METHODS.values():
        for knob in method.knobs:
            seen.setdefault(knob.name, knob)
    return tuple(seen.values())


def find_knob(name: str) -> Knob | None:
    """The registered knob ``name``, or None."""
    return next((k for k in all_knobs() if k.name == name), None)


def knob_methods(name: str) -> tuple[str, ...]:
    """The methods that have knob ``name``."""
    return tuple(m.name for m in _METHODS.values() if any(k.name == name for k in m.knobs))
