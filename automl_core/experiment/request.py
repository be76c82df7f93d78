"""What a user asks for: one search over one prepared data set."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from automl_core.errors import UserInputError
from automl_core.search.methods import MAX_GRID_SIZE, Setup, all_knobs, find_knob, get_method

#: How a model's partitions are ordered within an epoch (``mop.scheduler``): "seeded" repeats
#: every metric from the seed, whatever the workers' timing; "free" lets any free worker take
#: any model, which keeps workers busier but makes results depend on timing.
VISIT_ORDERS = ("seeded", "free")
# \Z, not $: "$" also matches before a trailing newline, so .match took "nl\n" as a name.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,199}\Z")

#: Integer limits of what is not a method's budget knob. With the knobs' own limits
#: (``automl_core.search.methods``) they are the one table ``SearchRequest.validate``, the
#: ``automl`` command's options, the spec loader (``automl_airflow.specs``) and the run
#: form (``automl_airflow.params``) read. Every seed fits the database's integer columns.
GENERAL_LIMITS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**31 - 1),
    "workers": (1, 256),
    "partitions": (1, 256),
    "top": (1, 10_000),  # trials a space is narrowed to (automl_core.space.narrow)
    # Configurations in a grid; owned (and checked) by the grid method, Grid.check.
    "grid_size": (1, MAX_GRID_SIZE),
}
#: The limits of the general keys and the built-in methods' knobs, as registered at import.
LIMITS: dict[str, tuple[int, int]] = {
    **GENERAL_LIMITS,
    **{k.name: k.limits for k in all_knobs() if k.limits is not None},
}


def _is_name(value: object) -> bool:
    """True for a valid experiment name: ``NAME_PATTERN`` matching the whole string."""
    return isinstance(value, str) and NAME_PATTERN.fullmatch(value) is not None


def limits_of(key: str) -> tuple[int, int] | None:
    """The inclusive limits of ``key`` (a general key or any registered knob), or None."""
    if key in GENERAL_LIMITS:
        return GENERAL_LIMITS[key]
    knob = find_knob(key)
    return None if knob is None else knob.limits


def check_limit(key: str, value: object, *, label: str | None = None) -> int:
    """``value`` if it is an integer within ``limits_of(key)``; else UserInputError naming
    ``label`` (default: ``key``; the CLI passes its option, e.g. ``--R``) and the range.
    ``KeyError`` when ``key`` has no limits."""
    limits = limits_of(key)
    if limits is None:
        raise KeyError(f"{key!r} has no limits")
    low, high = limits
    # bool is an int in Python; "true" for a budget is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserInputError(
            f"The value of {label or key} is {value!r}, but must be an integer from {low} "
            f"to {high}."
        )
    return value


def check_option_limits(values: Mapping[str, object]) -> None:
    """Check the command-line options that have limits (``None`` means not given);
    errors name the option as typed (``--batch-size``)."""
    for key, value in values.items():
        if limits_of(key) is not None and value is not None:
            check_limit(key, value, label="--" + key.replace("_", "-"))
    if values.get("cluster") is not None:
        _check_cluster_port(str(values["cluster"]), label="--cluster")


@dataclass(frozen=True)
class SearchRequest:
    """A search: the method, its budget, the space and the data.

    The budget fields below are the built-in methods' knobs (``automl_core.search.methods``):
    grid, random and hyperopt train every trial for ``epochs``; Hyperband trains rung i of
    bracket s to ``r_i`` epochs (``R`` at most). A registered method's knob that is no
    field here lives in ``extra_budget``; ``with_budget`` sorts a budget into both.
    """

    dataset: str
    space: Mapping[str, Any]
    method: str
    name: str | None = None
    seed: int = 0
    epochs: int = 5
    n: int = 8
    R: int = 9
    eta: int = 3
    skip_last: int = 0
    batches: int = 3
    batch_size: int = 4
    workers: int | None = None
    cluster: str | None = None
    airflow_run_id: str | None = None
    # Hyperopt: finished trials sampled at random before TPE (None: sized to the budget,
    # automl_core.search.hyperopt_search.startup_trials).
    startup_trials: int | None = None
    visit_order: str = "seeded"
    # The experiment whose best trials this search's space was narrowed to
    # (automl_core.experiment.narrowing); Hyperopt also learns from its trials.
    parent_experiment: str | None = None
    extra_budget: Mapping[str, int | None] = field(default_factory=dict)

    @classmethod
    def with_budget(cls, budget: Mapping[str, Any], **values: Any) -> SearchRequest:
        """A request with ``budget``'s knobs as fields or in ``extra_budget``."""
        extra = {**values.pop("extra_budget", {})}
        extra.update((k, v) for k, v in budget.items() if k not in _FIELDS)
        named = {k: v for k, v in budget.items() if k in _FIELDS}
        return cls(**values, **named, extra_budget=extra)

    def budget(self) -> dict[str, int | None]:
        """The value of each knob of this request's method (``UserInputError`` for an
        unknown method)."""
        return {k.name: self._knob_value(k.name, k.default) for k in get_method(self.method).knobs}

    def _knob_value(self, name: str, default: int | None) -> int | None:
        if name in _FIELDS:
            value: int | None = getattr(self, name)
            return value
        return self.extra_budget.get(name, default)

    def validate(self) -> None:
        """Raise UserInputError naming the first bad field.

        Numbers are held to their limits (``limits_of``); the method checks that the space
        can give its budget what it asks for (``SearchMethod.check``); every value of the space a trial will certainly
        get (fixed values, choice options, ends of integer ranges) is checked as the
        trainer reads it, so a space no trial could train with is refused before an
        experiment is written.
        """
        method = get_method(self.method)
        if self.visit_order not in VISIT_ORDERS:
            raise UserInputError(
                f"The value of visit_order is {self.visit_order!r}, but must be one of "
                f"{', '.join(VISIT_ORDERS)}."
            )
        if self.name is not None and not _is_name(self.name):
            raise UserInputError(
                f"The value of name is {self.name!r}, but must be 1-200 letters, digits or "
                "'_.:+-', starting with a letter or digit."
            )
        if self.parent_experiment is not None and not _is_name(self.parent_experiment):
            raise UserInputError(
                f"The value of parent_experiment is {self.parent_experiment!r}, but must be "
                "the name of an experiment (1-200 letters, digits or '_.:+-')."
            )
        if not isinstance(self.space, Mapping):
            raise UserInputError(
                f"The search space is a {type(self.space).__name__}, but must be a mapping of "
                "parameters: read a space file with "
                "automl_core.space.spec_file.load_spec_file(path)."
            )
        if not self.space:
            raise UserInputError("The search space is empty: give a space file with parameters.")
        # Every budget field is checked, whichever method reads it, as it always was.
        for knob in all_knobs():
            value = self._knob_value(knob.name, knob.default)
            if knob.limits is not None and (value is not None or knob.name in _FIELDS):
                knob.check(value)
        check_limit("seed", self.seed)
        if self.workers is not None:
            check_limit("workers", self.workers)
        if self.cluster is not None:
            _check_cluster_port(self.cluster)
        from automl_core.space import SearchSpace

        space = SearchSpace.from_dict(self.space)
        check_space_values(space)
        method.check(Setup(space, self.budget(), self.seed))

    def experiment_name(self) -> str:
        """The given name, or one made from the method, the data and the time."""
        if self.name:
            return self.name
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return f"{self.method}-{self.dataset}-{stamp}"

    def spec(self) -> dict[str, Any]:
        """What defines the experiment's results (stored; a rerun must match it)."""
        spec: dict[str, Any] = {
            "space": dict(self.space),
            "method": self.method,
            "budget": get_method(self.method).stored_budget(self.budget()),
        }
        if self.visit_order != "seeded":
            spec["visit_order"] = self.visit_order  # only when set: older specs stay equal
        return spec

    @classmethod
    def from_spec(cls, dataset: str, seed: int, spec: Mapping[str, Any]) -> SearchRequest:
        return cls.with_budget(
            spec["budget"],
            dataset=dataset,
            space=spec["space"],
            method=spec["method"],
            seed=seed,
            visit_order=spec.get("visit_order", "seeded"),
        )


_FIELDS = frozenset(f.name for f in fields(SearchRequest) if f.name != "extra_budget")


def _check_cluster_port(address: str, label: str = "cluster") -> None:
    # A port past 65535 only fails when the engine connects, after the experiment exists.
    _, _, port = address.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserInputError(
            f"The value of {label} is {address!r}, but must be a Dask scheduler address "
            "tcp://host:port with a port from 1 to 65535."
        )


def check_space_values(space: Any) -> None:
    """Refuse a value of ``space`` (a ``SearchSpace``) that the trainer refuses on its own.

    Each value from ``space.certain_values()`` is read alone, as the trainer reads it
    (``training.params.check_value``), so only a value that is wrong whatever the other
    keys hold is refused. Before that, the ends of every range of an architecture's
    declared integer (``hidden: {randint: [1, 10**12]}``) are held to its maximum
    (``training.params.check_bound``). Raises UserInputError naming the parameter.
    """
    from automl_core.space.model import Range, labelled
    from automl_core.training.params import check_bound, check_value

    for label, name, node in labelled(space.params):
        if not isinstance(node, Range):
            continue
        # randint's upper end is exclusive.
        ends = (node.low, node.high - 1) if node.kind == "randint" else (node.low, node.high)
        for end in ends:
            try:
                check_bound(name, end)
            except UserInputError as exc:
                raise UserInputError(
                    f"Search-space parameter {label!r} ({node.describe()}): {exc}"
                ) from None
    for label, name, value in space.certain_values():
        try:
            check_value(name, value)
        except UserInputError as exc:
            raise UserInputError(f"Search-space parameter {label!r}: {exc}") from None
