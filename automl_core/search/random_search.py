"""Random search: ``n`` distinct configurations drawn with an injected generator."""

from __future__ import annotations

from typing import Any

import numpy as np

from automl_core.errors import UserInputError
from automl_core.search.base import Searcher
from automl_core.search.distinct import sample_distinct
from automl_core.space import SearchSpace


class RandomSearch(Searcher):
    """Proposes ``n`` draws of ``space.sample(rng)`` that repeat no earlier one, then ``None``.

    The same ``rng`` seed gives the same configurations in the same order: the first
    ``ask`` draws all ``n`` at once (``sample_distinct(space, n, rng)``), so the
    configurations are exactly those of the random method's batches. Raises
    ``UserInputError`` when ``n`` is not an integer >= 1, and from the first ``ask`` when
    the space has fewer than ``n`` distinct configurations.
    """

    def __init__(self, space: SearchSpace, n: int, rng: np.random.Generator) -> None:
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserInputError(
                f"The number of configurations n is {n!r}, but must be an integer >= 1."
            )
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}.")
        self.space = space
        self.n = n
        self._rng = rng
        self._drawn: list[dict[str, Any]] | None = None

    def _propose(self) -> dict[str, Any] | None:
        if self.asked >= self.n:
            return None
        if self._drawn is None:
            self._drawn = sample_distinct(self.space, self.n, self._rng)
        return dict(self._drawn[self.asked])
