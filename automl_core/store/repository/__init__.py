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
experiments ``running``/``completed``/``failed``/``interrupted``; trials ``pending``/``running``/
``completed``/``failed``/``stopped``. Epochs are 1-based; trial ids are non-negative and
``next_trial_id`` numbers them from 0.
"""

from automl_core.store.repository._epochs import (
    Checkpoint,
    EpochRow,
    checkpoint_epochs,
    epochs,
    last_epoch,
    load_checkpoint,
    record_epoch,
    save_checkpoint,
)
from automl_core.store.repository._evaluations import EvaluationRow, evaluations, save_evaluation
from automl_core.store.repository._experiments import (
    EXPERIMENT_STATUSES,
    Experiment,
    create_experiment,
    get_experiment,
    list_experiments,
    resume_experiment,
    set_experiment_status,
)
from automl_core.store.repository._jobs import JobRow, jobs, record_jobs
from automl_core.store.repository._requests import (
    REQUEST_TRANSITIONS,
    UNFINISHED_STATES,
    EngineLease,
    RequestState,
    TrainingRequest,
    claim_requests,
    engine_alive,
    engine_heartbeat,
    fail_requests,
    finish_requests,
    get_engine,
    get_requests,
    interrupt_engine,
    requeue_running,
    resume_hint,
    stale_experiments,
    stale_lease,
    start_engine,
    stop_engine,
    submit_requests,
)
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
    "EvaluationRow",
    "evaluations",
    "save_evaluation",
    "EXPERIMENT_STATUSES",
    "REQUEST_TRANSITIONS",
    "TRIAL_STATUSES",
    "UNFINISHED_STATES",
    "Checkpoint",
    "EngineLease",
    "EpochRow",
    "Experiment",
    "FinishedTrial",
    "JobRow",
    "RequestState",
    "TrainingRequest",
    "RungEntry",
    "RungResult",
    "RungRow",
    "TrialRow",
    "checkpoint_epochs",
    "claim_requests",
    "create_experiment",
    "engine_alive",
    "engine_heartbeat",
    "epochs",
    "fail_requests",
    "finish_requests",
    "finished_trials",
    "get_engine",
    "get_experiment",
    "get_requests",
    "get_rung",
    "get_trials",
    "jobs",
    "last_epoch",
    "interrupt_engine",
    "list_experiments",
    "load_checkpoint",
    "next_trial_id",
    "record_epoch",
    "record_jobs",
    "requeue_running",
    "resume_experiment",
    "resume_hint",
    "stale_experiments",
    "stale_lease",
    "save_checkpoint",
    "set_experiment_status",
    "set_rung_results",
    "set_trial_status",
    "start_engine",
    "stop_engine",
    "submit_requests",
    "upsert_rung",
    "upsert_trials",
]
