"""Keyed, idempotent reads and writes of the ``automl`` tables.

Contract shared by every function here:
- the connection comes first; each call runs in one transaction of its own and commits
  it (any transaction the caller left open on the connection is committed with it);
  on error the transaction is rolled back and nothing is written;
- writes are keyed upserts, so a retried or re-run task never duplicates a row:
  "insert-if-absent" functions never change an existing row, "upsert" functions
  overwrite it with the new values;
- rows come back as small frozen dataclasses (or NamedTuples where a tuple is natural),
  ordered by their key;
- exceptions: the ``datasets`` functions run in the caller's transaction and do not commit
  (``prepare`` packs and records a dataset at once), and the results reads
  (``leaderboard_rows`` and the like, ``read_cursor``) only read: they leave the
  transaction state as they found it.

Statuses are ``StrEnum``s, read back as members and written from a member or its value:
``ExperimentState``, ``TrialState`` and ``RequestState``, each with a table of allowed
moves (``EXPERIMENT_TRANSITIONS``, ``TRIAL_TRANSITIONS``, ``REQUEST_TRANSITIONS``) that the
writes check. Epochs are 1-based; trial ids are non-negative and ``next_trial_id`` numbers
them from 0. A ``mop_jobs`` row is ``automl_core.mop.types.JobRecord``.
"""

from automl_core.store.repository._common import TransitionError, read_cursor
from automl_core.store.repository._datasets import (
    DATASET_COLUMNS,
    dataset_owns_table,
    dataset_record,
    datasets_table_exists,
    lock_dataset,
    upsert_dataset,
)
from automl_core.store.repository._epochs import (
    Checkpoint,
    EpochResult,
    EpochRow,
    checkpoint_epochs,
    epochs,
    last_epoch,
    load_checkpoint,
    record_epoch,
    record_epoch_results,
    save_checkpoint,
)
from automl_core.store.repository._evaluations import EvaluationRow, evaluations, save_evaluation
from automl_core.store.repository._experiments import (
    EXPERIMENT_STATUSES,
    EXPERIMENT_TRANSITIONS,
    Experiment,
    ExperimentState,
    check_experiment_name,
    create_experiment,
    experiment_data,
    experiment_record,
    experiments_on_dataset,
    get_experiment,
    list_experiments,
    resume_experiment,
    set_experiment_status,
)
from automl_core.store.repository._jobs import jobs, record_jobs
from automl_core.store.repository._leaderboard import (
    EPOCH_COLUMNS,
    JOB_COLUMNS,
    LEADERBOARD_COLUMNS,
    RUNG_COLUMNS,
    best_trial_with_checkpoint,
    epoch_history_rows,
    job_log_rows,
    leaderboard_rows,
    rung_result_rows,
)
from automl_core.store.repository._requests import (
    ENGINE_SILENT_S,
    REQUEST_TRANSITIONS,
    UNFINISHED_STATES,
    EngineBusyError,
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
    TRIAL_TRANSITIONS,
    FinishedTrial,
    TrialRow,
    TrialState,
    finished_trials,
    get_trials,
    next_trial_id,
    set_trial_status,
    upsert_trials,
)

__all__ = [
    "Checkpoint",
    "DATASET_COLUMNS",
    "EPOCH_COLUMNS",
    "EXPERIMENT_STATUSES",
    "EXPERIMENT_TRANSITIONS",
    "ENGINE_SILENT_S",
    "EngineBusyError",
    "EngineLease",
    "EpochRow",
    "EvaluationRow",
    "Experiment",
    "ExperimentState",
    "FinishedTrial",
    "JOB_COLUMNS",
    "LEADERBOARD_COLUMNS",
    "REQUEST_TRANSITIONS",
    "RUNG_COLUMNS",
    "RequestState",
    "RungEntry",
    "RungResult",
    "RungRow",
    "TRIAL_STATUSES",
    "TRIAL_TRANSITIONS",
    "TrainingRequest",
    "TransitionError",
    "TrialRow",
    "TrialState",
    "UNFINISHED_STATES",
    "best_trial_with_checkpoint",
    "checkpoint_epochs",
    "EpochResult",
    "record_epoch_results",
    "claim_requests",
    "check_experiment_name",
    "create_experiment",
    "dataset_owns_table",
    "dataset_record",
    "datasets_table_exists",
    "engine_alive",
    "engine_heartbeat",
    "epoch_history_rows",
    "epochs",
    "evaluations",
    "experiment_record",
    "fail_requests",
    "finish_requests",
    "finished_trials",
    "get_engine",
    "get_experiment",
    "get_requests",
    "get_rung",
    "get_trials",
    "interrupt_engine",
    "job_log_rows",
    "jobs",
    "last_epoch",
    "leaderboard_rows",
    "experiments_on_dataset",
    "experiment_data",
    "list_experiments",
    "load_checkpoint",
    "lock_dataset",
    "next_trial_id",
    "read_cursor",
    "record_epoch",
    "record_jobs",
    "requeue_running",
    "resume_experiment",
    "resume_hint",
    "rung_result_rows",
    "save_checkpoint",
    "save_evaluation",
    "set_experiment_status",
    "set_rung_results",
    "set_trial_status",
    "stale_experiments",
    "stale_lease",
    "start_engine",
    "stop_engine",
    "submit_requests",
    "upsert_dataset",
    "upsert_rung",
    "upsert_trials",
]
