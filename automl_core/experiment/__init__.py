"""Orchestration: experiments, brackets, batches, training and finalisation.

The functions here are what `automl run` and the Airflow operators call; each opens
its own connection and is idempotent (see docs/architecture.md).
"""

from automl_core.experiment.api import (
    create_experiment,
    promote_rung,
    propose_batch,
    start_bracket,
    train_batch,
    train_rung,
)
from automl_core.experiment.driver import run_search
from automl_core.experiment.finalize import finalize
from automl_core.experiment.request import METHODS, SearchRequest, batch_count

__all__ = [
    "METHODS",
    "SearchRequest",
    "batch_count",
    "create_experiment",
    "finalize",
    "promote_rung",
    "propose_batch",
    "run_search",
    "start_bracket",
    "train_batch",
    "train_rung",
]
