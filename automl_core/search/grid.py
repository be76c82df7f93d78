"""Grid search: every configuration of a discrete space, in the space's grid order."""

from __future__ import annotations

from typing import Any

from automl_core.search.base import Searcher
from automl_core.space import SearchSpace


class GridSearch(Searcher):
    """Proposes ``space.grid()`` in order; config id ``i`` is the ``i``-th grid point.

    Raises ``UserInputError`` at construction when the space has a continuous range.
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.size = space.grid_size()  # validates before anything is asked
        self._grid = space.grid()

    def _propose(self) -> dict[str, Any] | None:
        return next(self._grid, None)
