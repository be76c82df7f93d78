"""Hyperopt as a method: batches in sequence, each proposed by TPE from all before it."""

from __future__ import annotations

from automl_core.search.distinct import require_distinct
from automl_core.search.groups import PlanGroup
from automl_core.search.hyperopt_search import HyperoptSearch, startup_trials
from automl_core.search.methods._batches import batch_groups
from automl_core.search.methods._knobs import BATCH_SIZE, BATCHES, EPOCHS, STARTUP_TRIALS
from automl_core.search.methods._registry import Config, History, SearchMethod, Setup


class Hyperopt(SearchMethod):
    name = "hyperopt"
    title = "Hyperopt"
    knobs = (EPOCHS, BATCHES, BATCH_SIZE, STARTUP_TRIALS)

    def _startup(self, setup: Setup) -> int:
        total = setup.value("batches") * setup.value("batch_size")
        return startup_trials(setup.budget.get("startup_trials"), total)

    def check(self, setup: Setup) -> None:
        """A valid ``startup_trials``; ``batches * batch_size`` distinct configurations."""
        batches, size = setup.value("batches"), setup.value("batch_size")
        self._startup(setup)
        require_distinct(setup.space, batches * size, f"Hyperopt with {batches} batches of {size}")

    def plan(self, setup: Setup) -> tuple[PlanGroup, ...]:
        size = setup.value("batch_size")
        total = setup.value("batches") * size
        return batch_groups(total, size, setup.value("epochs"), sequential=True)

    def propose(self, setup: Setup, group: PlanGroup, history: History) -> list[tuple[int, Config]]:
        """Batch ``group.index`` from TPE, told every trial before it (``history``)."""
        size = setup.value("batch_size")
        start = group.index * size
        search = HyperoptSearch.from_history(
            setup.space,
            history(start),
            seed=setup.seed + group.index,
            n_startup_jobs=self._startup(setup),
        )
        return [(start + j, c) for j, c in enumerate(search.ask_batch(size))]
