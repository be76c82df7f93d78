"""Orchestration: experiments, the search plan, the training engine, finalisation.

`automl run` and the Airflow tasks call the functions here; each step opens its own
connection and is idempotent (see docs/reference.md).

The names below are imported on first use (PEP 562), so that a module of this package
(``request``, ``plan``: what building a DAG needs) is imported without the engine and
the database steps: the Airflow DAG processor parses the DAG file again for every task
that ends in the triggerer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from automl_core.experiment.api import (
        complete_batch,
        create_experiment,
        promote_rung,
        propose_batch,
        submit_batch,
        submit_rung,
    )
    from automl_core.experiment.driver import run_engine, run_search
    from automl_core.experiment.finalizing import finalize
    from automl_core.experiment.plan import SearchPlan, search_plan
    from automl_core.experiment.progress import request_progress
    from automl_core.experiment.request import SearchRequest

# Each public name and the module of this package that defines it. No module may share
# a name with a function here: importing it would put the module in the function's place.
_MODULE_OF = {
    "complete_batch": "api",
    "create_experiment": "api",
    "promote_rung": "api",
    "propose_batch": "api",
    "request_progress": "progress",
    "submit_batch": "api",
    "submit_rung": "api",
    "run_engine": "driver",
    "run_search": "driver",
    "finalize": "finalizing",
    "SearchPlan": "plan",
    "search_plan": "plan",
    "SearchRequest": "request",
}

__all__ = [
    "SearchPlan",
    "SearchRequest",
    "complete_batch",
    "create_experiment",
    "finalize",
    "promote_rung",
    "propose_batch",
    "request_progress",
    "run_engine",
    "run_search",
    "search_plan",
    "submit_batch",
    "submit_rung",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
