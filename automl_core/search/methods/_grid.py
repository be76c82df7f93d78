"""Grid search as a method: every distinct configuration once, in batches (``GridSearch``)."""

from __future__ import annotations

import functools
import logging

from automl_core.errors import UserInputError
from automl_core.search.distinct import distinct_grid, distinct_grid_size
from automl_core.search.groups import PlanGroup
from automl_core.search.methods._batches import batch_groups, batch_ids
from automl_core.search.methods._knobs import BATCH_SIZE, EPOCHS
from automl_core.search.methods._registry import Config, History, SearchMethod, Setup
from automl_core.space import SearchSpace

log = logging.getLogger(__name__)

#: The most configurations a grid may have. Each is a trial with its rows in the database,
#: and a grid's batches and configurations are held in memory while it is planned and
#: proposed; past this many, sampling (random, hyperopt) is the tool. Listed with the
#: other limits in ``automl_core.experiment.request.LIMITS`` as ``grid_size``.
MAX_GRID_SIZE = 100_000


class Grid(SearchMethod):
    name = "grid"
    title = "grid"
    knobs = (EPOCHS, BATCH_SIZE)
    narrowable = False  # a narrowed space has another size: another plan

    def check(self, setup: Setup) -> None:
        """A discrete space of at most ``MAX_GRID_SIZE`` configurations; repeats in its
        lists are dropped (logged), not refused."""
        space = setup.space
        if not space.is_discrete:
            raise UserInputError(
                "method 'grid' needs a discrete space (lists and fixed values only); "
                "use --method random or hyperopt for continuous ranges."
            )
        # The product of the option counts, computed without enumerating: the count of
        # repeats below walks the grid, so it comes after.
        size = space.grid_size()
        if size > MAX_GRID_SIZE:
            raise UserInputError(
                f"The grid has {size:,} configurations ({_factors(space)}), but method "
                f"'grid' takes at most {MAX_GRID_SIZE:,}: list fewer values, or use "
                "--method random or hyperopt to sample from the space."
            )
        distinct = distinct_grid_size(space)
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
        grid = _distinct_configs(setup.space)
        ids = batch_ids(group.index, setup.value("batch_size"), len(grid))
        return [(i, dict(grid[i])) for i in ids]


def _distinct_configs(space: SearchSpace) -> tuple[Config, ...]:
    """``distinct_grid(space)``, walked once per space and process rather than once per
    batch: proposing every batch of an N-configuration grid is then O(N), where walking
    to each batch's offset was O(N**2 / batch_size) (20,000 batches of one: the last 200
    took 19.5 s, ~16 minutes in all).
    """
    # Keyed by the repr too: spaces compare 1 == 1.0 == True, their configurations don't.
    return _cached_grid(repr(space), space)


@functools.lru_cache(maxsize=2)
def _cached_grid(exact: str, space: SearchSpace) -> tuple[Config, ...]:
    return tuple(distinct_grid(space))


def _factors(space: SearchSpace) -> str:
    """``'a': 1,000 x 'b': 1,000 x ...``: each top-level parameter's count, largest first."""
    counts = sorted(
        ((SearchSpace((param,)).grid_size(), param[0]) for param in space.params),
        key=lambda c: -c[0],
    )
    shown = " x ".join(f"{name!r}: {count:,}" for count, name in counts[:4])
    return shown + (" x ..." if len(counts) > 4 else "")
