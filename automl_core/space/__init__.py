"""Search spaces: the model, its parsers (native YAML/JSON, MADlib grids), hyperopt bridge.

Imports neither torch, psycopg2, dask nor (until a hyperopt method is called) hyperopt.
"""

from automl_core.space.madlib import space_from_madlib
from automl_core.space.model import (
    DISTRIBUTIONS,
    Choice,
    Conditional,
    Fixed,
    Node,
    Params,
    Range,
    Scalar,
)
from automl_core.space.search_space import SearchSpace

__all__ = [
    "DISTRIBUTIONS",
    "Choice",
    "Conditional",
    "Fixed",
    "Node",
    "Params",
    "Range",
    "Scalar",
    "SearchSpace",
    "space_from_madlib",
]
