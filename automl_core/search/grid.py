"""Grid search: every distinct configuration of a discrete space, in the space's grid order.

A repeated value (``batch_size: [32, 32, 64]``) or two conditional options that expand to
the same configuration are trained once, as MADlib's ``generate_model_configs`` does.
"""

from __future__ import annotations

from typing import Any

from automl_core.search.base import Searcher
from automl_core.search.distinct import distinct_grid, distinct_grid_size
from automl_core.space import SearchSpace


class GridSearch(Searcher):
    """Proposes ``distinct_grid(space)`` in order; config id ``i`` is its ``i``-th point.

    Raises ``UserInputError`` at construction when the space has a continuous range.
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.size = distinct_grid_size(space)  # validates before anything is asked
        self._grid = distinct_grid(space)

    def _propose(self) -> dict[str, Any] | None:
        return next(self._grid, None)
