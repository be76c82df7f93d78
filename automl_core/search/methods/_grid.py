"""Grid search as a method: every distinct configuration once, in batches (``GridSearch``)."""

from __future__ import annotations

import itertools
import logging

from automl_core.errors import UserInputError
from automl_core.search.distinct import distinct_grid_size
from automl_core.search.grid import GridSearch
from automl_core.search.groups import PlanGroup
from automl_core.search.methods._batches import batch_groups, batch_ids
from automl_core.search.methods._knobs import BATCH_SIZE, EPOCHS
from automl_core.search.methods._registry import Config, History, SearchMethod, Setup

log = logging.getLogger(__name__)


class Grid(SearchMethod):
    name = "grid"
    title = "grid"
    knobs = (EPOCHS, BATCH_SIZE)
    narrowable = False  # a narrowed space has another size: another plan

    def check(self, setup: Setup) -> None:
        """A discrete space; repeats in its lists are dropped (logged), not refused."""
        space = setup.space
        if not space.is_discrete:
            raise UserInputError(
                "method 'grid' needs a discrete space (lists and fixed values only); "
                "use --method random or hyperopt for continuous ranges."
            )
        size, distinct = space.grid_size(), distinct_grid_size(space)
        if distinct < size:
            log.warning(
                "the grid lists %d configurations, %d of them repeats: each of the %d "
                "distinct ones is trained once",
                size,
                size - distinct,
                distinct,
            )

    def plan(self, setup: Setup) -> tuple[PlanGroup, ...]:
        total = distinct_grid_size(setup.space)
        return batch_groups(total, setup.value("batch_size"), setup.value("epochs"))

    def propose(self, setup: Setup, group: PlanGroup, history: History) -> list[tuple[int, Config]]:
        search = GridSearch(setup.space)
        ids = batch_ids(group.index, setup.value("batch_size"), search.size)
        configs = itertools.islice(iter(search.ask, None), ids.start, ids.stop)
        return list(zip(ids, configs, strict=True))
