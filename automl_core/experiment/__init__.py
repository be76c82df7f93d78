"""Orchestration: experiments, the search plan, the training engine, finalisation.

`automl run` and the Airflow tasks call the functions here; each step opens its own
connection and is idempotent (see docs/reference.md).
"""

from automl_core.experiment.api import (
    complete_batch,
    create_experiment,
    promote_rung,
    propose_batch,
    request_progress,
    submit_batch,
    submit_rung,
)
from automl_core.experiment.driver import run_engine, run_search
from automl_core.experiment.finalize import finalize
from automl_core.experiment.plan import SearchPlan, search_plan
from automl_core.experiment.request import SearchRequest

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
