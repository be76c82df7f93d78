"""The search methods, one registry entry each: knobs, plan and proposals.

See ``_registry`` for the contract. The built-in methods register here, in the order
help texts list them.
"""

from automl_core.search.methods._grid import MAX_GRID_SIZE, Grid
from automl_core.search.methods._hyperband import Hyperband
from automl_core.search.methods._hyperopt import Hyperopt
from automl_core.search.methods._random import Random
from automl_core.search.methods._registry import (
    Config,
    History,
    Knob,
    Promotion,
    SearchMethod,
    Setup,
    all_knobs,
    find_knob,
    get_method,
    knob_methods,
    method_names,
    register,
    unregister,
)

for _method in (Grid(), Random(), Hyperband(), Hyperopt()):
    register(_method)

__all__ = [
    "MAX_GRID_SIZE",
    "Config",
    "History",
    "Knob",
    "Promotion",
    "SearchMethod",
    "Setup",
    "all_knobs",
    "find_knob",
    "get_method",
    "knob_methods",
    "method_names",
    "register",
    "unregister",
]
