"""Random search as a method: ``n`` distinct draws (``RandomSearch``), in batches."""

from __future__ import annotations

import numpy as np

from automl_core.search.distinct import require_distinct
from automl_core.search.groups import PlanGroup
from automl_core.search.methods._batches import batch_groups, batch_ids
from automl_core.search.methods._knobs import BATCH_SIZE, EPOCHS, N
from automl_core.search.methods._registry import Config, History, SearchMethod, Setup
from automl_core.search.random_search import RandomSearch


class Random(SearchMethod):
    name = "random"
    title = "random"
    knobs = (EPOCHS, N, BATCH_SIZE)

    def check(self, setup: Setup) -> None:
        n = setup.value("n")
        require_distinct(setup.space, n, f"random search with n={n}")

    def plan(self, setup: Setup) -> tuple[PlanGroup, ...]:
        return batch_groups(setup.value("n"), setup.value("batch_size"), setup.value("epochs"))

    def propose(self, setup: Setup, group: PlanGroup, history: History) -> list[tuple[int, Config]]:
        n = setup.value("n")
        # Ask all n in order, then slice: batch b is the same whichever batch ran first.
        search = RandomSearch(setup.space, n, np.random.default_rng(setup.seed))
        configs = list(iter(search.ask, None))
        return [(i, configs[i]) for i in batch_ids(group.index, setup.value("batch_size"), n)]
