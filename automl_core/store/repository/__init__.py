"""Keyed, idempotent reads and writes of the ``automl`` tables.

Contract shared by every function here:
- the connection comes first; each call runs in one transaction of its own and commits
  it (any transaction the caller left open on the connection is committed with it);
  on error the transaction is rolled back and nothing is written;
- writes are keyed upserts, so a retried or re-run task never duplicates a row:
  "insert-if-absent" functions never change an existing row, "upsert" functions
  overwrite it with the new values;
- rows come back as small frozen dataclasses (or NamedTuples where a tuple is natural),
  ordered by their key.

Statuses are plain strings (a ``str`` Enum whose values are these strings also works):
experiments ``running``/``completed``/``failed``; trials ``pending``/``running``/
``completed``/``failed``/``stopped``. Epochs are 1-based; trial ids are non-negative and
``next_trial_id`` numbers them from 0.
"""

from automl_core.store.repository._epochs import (
    Checkpoint,
    EpochRow,
    epochs,
    last_epoch,
    load_checkpoint,
    record_epoch,
    save_checkpoint,
)
from automl_core.store.repository._experiments import (
    EXPERIMENT_STATUSES,
    Experiment,
    create_experiment,
    get_experiment,
    list_experiments,
    set_experiment_status,
)
from automl_core.store.repository._jobs import JobRow, jobs, record_jobs
from automl_core.store.repository._rungs import (
    RungEntry,
    RungResult,
    RungRow,
    get_rung,
    set_rung_results,
    upsert_rung,
)
from automl_core.store.repository._trials import (
    TRIAL_STATUSES,
    FinishedTrial,
    TrialRow,
    finished_trials,
    get_trials,
    next_trial_id,
    set_trial_status,
    upsert_trials,
)

__all__ = [
    "EXPERIMENT_STATUSES",
    "TRIAL_STATUSES",
    "Checkpoint",
    "EpochRow",
    "Experiment",
    "FinishedTrial",
    "JobRow",
    "RungEntry",
    "RungResult",
    "RungRow",
    "TrialRow",
    "create_experiment",
    "epochs",
    "finished_trials",
    "get_experiment",
    "get_rung",
    "get_trials",
    "jobs",
    "last_epoch",
    "list_experiments",
    "load_checkpoint",
    "next_trial_id",
    "record_epoch",
    "record_jobs",
    "save_checkpoint",
    "set_experiment_status",
    "set_rung_results",
    "set_trial_status",
    "upsert_rung",
    "upsert_trials",
]
