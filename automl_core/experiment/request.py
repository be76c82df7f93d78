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
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,199}$")


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

    def validate(self) -> None:
        """Raise UserInputError naming the first bad field."""
        if self.method not in METHODS:
            raise UserInputError(
                f"The value of method is {self.method!r}, but must be one of {', '.join(METHODS)}."
            )
        if self.name is not None and not NAME_PATTERN.match(self.name):
            raise UserInputError(
                f"The value of name is {self.name!r}, but must be 1-200 letters, digits or "
                "'_.:+-', starting with a letter or digit."
            )
        if not isinstance(self.space, Mapping) or not self.space:
            raise UserInputError("The search space is empty: give a space file with parameters.")
        for key, low in (
            ("epochs", 1),
            ("n", 1),
            ("R", 1),
            ("eta", 2),
            ("batches", 1),
            ("batch_size", 1),
            ("seed", 0),
            ("skip_last", 0),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserInputError(
                    f"The value of {key} is {value!r}, but must be an integer >= {low}."
                )
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise UserInputError(
                f"The value of workers is {self.workers!r}, but must be an integer >= 1."
            )
        from automl_core.space import SearchSpace

        space = SearchSpace.from_dict(self.space)
        if self.method == "grid" and not space.is_discrete:
            raise UserInputError(
                "method 'grid' needs a discrete space (lists and fixed values only); "
                "use --method random or hyperopt for continuous ranges."
            )
        if self.method == "hyperband":
            from automl_core.search.hyperband import hyperband_schedule

            hyperband_schedule(self.R, self.eta, self.skip_last)

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
        return {
            "space": dict(self.space),
            "method": self.method,
            "budget": {k: data[k] for k in keep},
        }

    @classmethod
    def from_spec(cls, dataset: str, seed: int, spec: Mapping[str, Any]) -> SearchRequest:
        return cls(
            dataset=dataset,
            space=spec["space"],
            method=spec["method"],
            seed=seed,
            **spec["budget"],
        )


def batch_count(request: SearchRequest) -> int:
    """How many batches a grid, random or hyperopt search has (pure; fixes a DAG's shape)."""
    if request.method == "hyperopt":
        return request.batches
    if request.method == "random":
        return math.ceil(request.n / request.batch_size)
    if request.method == "grid":
        from automl_core.space import SearchSpace

        return math.ceil(SearchSpace.from_dict(request.space).grid_size() / request.batch_size)
    raise UserInputError("Hyperband has brackets, not batches: use hyperband_schedule().")
