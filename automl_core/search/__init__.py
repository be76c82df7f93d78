"""Search methods: pure ask/tell objects, seeded, with no I/O.

Grid and random search propose configurations one at a time; Hyperband is a schedule
(brackets of rungs) plus a promotion rule; Hyperopt proposes batches from all finished
trials. None of them trains, stores or prints: the runner carries their decisions out.
"""

from automl_core.search.base import Searcher, rank
from automl_core.search.grid import GridSearch
from automl_core.search.hyperband import (
    Bracket,
    HyperbandSchedule,
    Rung,
    Schedule,
    bracket_seed,
    hyperband_schedule,
    sample_bracket,
    select_survivors,
)
from automl_core.search.hyperopt_search import HyperoptSearch
from automl_core.search.random_search import RandomSearch

__all__ = [
    "Bracket",
    "GridSearch",
    "HyperbandSchedule",
    "HyperoptSearch",
    "RandomSearch",
    "Rung",
    "Schedule",
    "Searcher",
    "bracket_seed",
    "hyperband_schedule",
    "rank",
    "sample_bracket",
    "select_survivors",
]
