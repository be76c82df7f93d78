"""Whether a space holds what a search asks of it: checked before anything is written.

A search proposes every configuration once (``automl_core.search.distinct``), so a finite
space with fewer distinct configurations than a random, Hyperopt or Hyperband search
asks for cannot be searched as asked. That is refused here, with both numbers and the
fixes, rather than trained as fewer trials: a search's trial ids and its DAG's shape
follow from its budget alone (``automl_core.experiment.plan``). A grid asks for every
distinct configuration, so repeats in its lists are dropped (logged), not refused.
"""

from __future__ import annotations

import logging
from typing import Protocol

from automl_core.search.distinct import distinct_grid_size, require_distinct
from automl_core.search.hyperopt_search import startup_trials
from automl_core.space import SearchSpace

log = logging.getLogger(__name__)


class Budget(Protocol):
    """The budget fields of ``automl_core.experiment.SearchRequest`` read here."""

    @property
    def method(self) -> str: ...
    @property
    def n(self) -> int: ...
    @property
    def R(self) -> int: ...  # noqa: N802 - the paper's name, as in SearchRequest
    @property
    def eta(self) -> int: ...
    @property
    def skip_last(self) -> int: ...
    @property
    def batches(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def startup_trials(self) -> int | None: ...


def check_search_budget(space: SearchSpace, budget: Budget) -> None:
    """Raise ``UserInputError`` when ``space`` cannot give ``budget`` what it asks for.

    Random search needs ``n`` distinct configurations; Hyperopt ``batches * batch_size``
    (and a valid ``startup_trials``); Hyperband one per configuration of every bracket
    (``HyperbandSchedule.n_configs``). The budget's own fields are assumed valid.
    """
    method = budget.method
    if method == "grid":
        size, distinct = space.grid_size(), distinct_grid_size(space)
        if distinct < size:
            log.warning(
                "the grid lists %d configurations, %d of them repeats: each of the %d "
                "distinct ones is trained once",
                size,
                size - distinct,
                distinct,
            )
        return
    if method == "random":
        require_distinct(space, budget.n, f"random search with n={budget.n}")
    elif method == "hyperopt":
        total = budget.batches * budget.batch_size
        startup_trials(budget.startup_trials, total)
        require_distinct(
            space,
            total,
            f"Hyperopt with {budget.batches} batches of {budget.batch_size}",
        )
    elif method == "hyperband":
        from automl_core.search.hyperband import hyperband_schedule

        schedule = hyperband_schedule(budget.R, budget.eta, budget.skip_last)
        require_distinct(
            space,
            schedule.n_configs,
            f"Hyperband with R={budget.R}, eta={budget.eta} ({schedule.n_configs} "
            "configurations over its brackets)",
        )
