"""What a user asks for: one search over one prepared data set."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from automl_core.errors import UserInputError

METHODS = ("grid", "random", "hyperband", "hyperopt")
#: How a model's partitions are ordered within an epoch (``mop.scheduler``): "seeded" repeats
#: every metric from the seed, whatever the workers' timing; "free" lets any free worker take
#: any model, which keeps workers busier but makes results depend on timing.
VISIT_ORDERS = ("seeded", "free")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,199}$")

#: The one table of integer limits: ``SearchRequest.validate``, the ``automl`` command's
#: options, the spec loader (``automl_airflow.specs``) and the run form
#: (``automl_airflow.params``) all read it. Upper bounds keep a typo (``--R 1e12``) from
#: sampling for hours, and every seed fits the database's integer columns.
LIMITS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**31 - 1),
    "epochs": (1, 1000),
    "n": (1, 10_000),
    "R": (1, 10_000),
    "eta": (2, 10_000),
    "skip_last": (0, 10_000),
    "batches": (1, 10_000),
    "batch_size": (1, 10_000),
    "workers": (1, 256),
    "partitions": (1, 256),
    "top": (1, 10_000),  # trials a space is narrowed to (automl_core.space.narrow)
}


def check_limit(key: str, value: object, *, label: str | None = None) -> int:
    """``value`` if it is an integer within ``LIMITS[key]``; else UserInputError naming
    ``label`` (default: ``key``; the CLI passes its option, e.g. ``--R``) and the range."""
    low, high = LIMITS[key]
    # bool is an int in Python; "true" for a budget is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserInputError(
            f"The value of {label or key} is {value!r}, but must be an integer from {low} "
            f"to {high}."
        )
    return value


def check_option_limits(values: Mapping[str, object]) -> None:
    """Check the command-line options that ``LIMITS`` names (``None`` means not given);
    errors name the option as typed (``--batch-size``)."""
    for key, value in values.items():
        if key in LIMITS and value is not None:
            check_limit(key, value, label="--" + key.replace("_", "-"))


@dataclass(frozen=True)
class SearchRequest:
    """A search: the method, its budget, the space and the data.

    Epoch budgets: grid, random and hyperopt train every trial for ``epochs``; Hyperband
    trains rung i of bracket s to ``r_i`` epochs (``R`` at most).
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

    def validate(self) -> None:
        """Raise UserInputError naming the first bad field.

        Numbers are held to ``LIMITS``; every value of the space a trial will certainly
        get (fixed values, choice options, ends of integer ranges) is checked as the
        trainer reads it, so a space no trial could train with is refused before an
        experiment is written.
        """
        if self.method not in METHODS:
            raise UserInputError(
                f"The value of method is {self.method!r}, but must be one of {', '.join(METHODS)}."
            )
        if self.visit_order not in VISIT_ORDERS:
            raise UserInputError(
                f"The value of visit_order is {self.visit_order!r}, but must be one of "
                f"{', '.join(VISIT_ORDERS)}."
            )
        if self.name is not None and not NAME_PATTERN.match(self.name):
            raise UserInputError(
                f"The value of name is {self.name!r}, but must be 1-200 letters, digits or "
                "'_.:+-', starting with a letter or digit."
            )
        if self.parent_experiment is not None and not NAME_PATTERN.match(self.parent_experiment):
            raise UserInputError(
                f"The value of parent_experiment is {self.parent_experiment!r}, but must be "
                "the name of an experiment (1-200 letters, digits or '_.:+-')."
            )
        if not isinstance(self.space, Mapping) or not self.space:
            raise UserInputError("The search space is empty: give a space file with parameters.")
        for key in ("epochs", "n", "R", "eta", "batches", "batch_size", "seed", "skip_last"):
            check_limit(key, getattr(self, key))
        if self.workers is not None:
            check_limit("workers", self.workers)
        if self.cluster is not None:
            _check_cluster_port(self.cluster)
        from automl_core.space import SearchSpace

        space = SearchSpace.from_dict(self.space)
        check_space_values(space)
        if self.method == "grid" and not space.is_discrete:
            raise UserInputError(
                "method 'grid' needs a discrete space (lists and fixed values only); "
                "use --method random or hyperopt for continuous ranges."
            )
        if self.method == "hyperband":
            from automl_core.search.hyperband import hyperband_schedule

            hyperband_schedule(self.R, self.eta, self.skip_last)
        from automl_core.search.budget import check_search_budget

        check_search_budget(space, self)

    def experiment_name(self) -> str:
        """The given name, or one made from the method, the data and the time."""
        if self.name:
            return self.name
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        return f"{self.method}-{self.dataset}-{stamp}"

    def spec(self) -> dict[str, Any]:
        """What defines the experiment's results (stored; a rerun must match it)."""
        keep = {
            "grid": ("epochs", "batch_size"),
            "random": ("epochs", "n", "batch_size"),
            "hyperband": ("R", "eta", "skip_last"),
            "hyperopt": ("epochs", "batches", "batch_size"),
        }[self.method]
        data = asdict(self)
        if self.method == "hyperopt" and self.startup_trials is not None:
            keep = (*keep, "startup_trials")  # only when set: older specs stay equal
        spec: dict[str, Any] = {
            "space": dict(self.space),
            "method": self.method,
            "budget": {k: data[k] for k in keep},
        }
        if self.visit_order != "seeded":
            spec["visit_order"] = self.visit_order  # only when set: older specs stay equal
        return spec

    @classmethod
    def from_spec(cls, dataset: str, seed: int, spec: Mapping[str, Any]) -> SearchRequest:
        return cls(
            dataset=dataset,
            space=spec["space"],
            method=spec["method"],
            seed=seed,
            visit_order=spec.get("visit_order", "seeded"),
            **spec["budget"],
        )


def _check_cluster_port(address: str) -> None:
    # A port past 65535 only fails when the engine connects, after the experiment exists.
    _, _, port = address.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserInputError(
            f"The value of cluster is {address!r}, but must be a Dask scheduler address "
            "tcp://host:port with a port from 1 to 65535."
        )


def check_space_values(space: Any) -> None:
    """Refuse a value of ``space`` (a ``SearchSpace``) that the trainer refuses on its own.

    Each value from ``space.certain_values()`` is read alone, as the trainer reads it
    (``training.params.check_value``), so only a value that is wrong whatever the other
    keys hold is refused. Raises UserInputError naming the parameter.
    """
    from automl_core.training.params import check_value

    for label, name, value in space.certain_values():
        try:
            check_value(name, value)
        except UserInputError as exc:
            raise UserInputError(f"Search-space parameter {label!r}: {exc}") from None


def batch_count(request: SearchRequest) -> int:
    """How many batches a grid, random or hyperopt search has (pure; fixes a DAG's shape)."""
    if request.method == "hyperopt":
        return request.batches
    if request.method == "random":
        return math.ceil(request.n / request.batch_size)
    if request.method == "grid":
        from automl_core.search.distinct import distinct_grid_size
        from automl_core.space import SearchSpace

        grid = distinct_grid_size(SearchSpace.from_dict(request.space))
        return math.ceil(grid / request.batch_size)
    raise UserInputError("Hyperband has brackets, not batches: use hyperband_schedule().")
