"""SQL views over the results tables, for people who query the database directly.

``automl.trial_summary``: one row per trial of every experiment: its configuration,
bracket, highest Hyperband rung reached, epochs trained, final and best validation
accuracy and loss, training time and status.

``automl.leaderboard``: the same rows with ``rank`` within their experiment: best
validation accuracy first, ties broken by the lower trial id, failed trials after the
others (a trial whose job kept failing keeps the epochs it trained, but a failure is
not the model to hand over; migration 8) and trials without a validation result last.
``automl_core.report.leaderboard`` reads this view, and export takes its best-ranked
trial with a checkpoint, so the command line, the DataFrame, the export and a
hand-written query always agree.

Definitions of the derived columns (the leaderboard's contract):
- ``epochs``: the highest epoch recorded (epochs are 1-based), 0 when none;
- ``final_*``: the metrics of that epoch (the latest state, which training resumes from);
- ``best_valid_accuracy``: the highest validation accuracy of any epoch, ``best_epoch``
  the first epoch that reached it: the trial's model, whose state
  ``automl.best_checkpoints`` keeps and export and predict use; ``best_valid_loss``:
  the lowest validation loss;
- ``train_seconds``: the sum of the epochs' seconds (training and evaluation);
- ``rung``: the highest rung the trial entered (NULL outside Hyperband).

The views use only window functions and grouping (no LATERAL), which Greenplum and
PostgreSQL plan alike; the ``dialect`` argument is accepted so the migration that
creates them has the same shape as every other migration.
"""

from __future__ import annotations

from typing import Any

TRIAL_SUMMARY_SQL = """
CREATE OR REPLACE VIEW automl.trial_summary AS
WITH per_epoch AS (
    SELECT experiment_id, trial_id, epoch, valid_accuracy, valid_loss, seconds,
           row_number() OVER (PARTITION BY experiment_id, trial_id
                              ORDER BY epoch DESC) AS from_last,
           row_number() OVER (PARTITION BY experiment_id, trial_id
                              ORDER BY valid_accuracy DESC NULLS LAST, epoch) AS by_accuracy
    FROM automl.trial_epochs
), per_trial AS (
    SELECT experiment_id, trial_id,
           max(epoch) AS epochs,
           sum(seconds) AS train_seconds,
           max(valid_accuracy) AS best_valid_accuracy,
           min(valid_loss) AS best_valid_loss,
           max(CASE WHEN from_last = 1 THEN valid_accuracy END) AS final_valid_accuracy,
           max(CASE WHEN from_last = 1 THEN valid_loss END) AS final_valid_loss,
           max(CASE WHEN by_accuracy = 1 AND valid_accuracy IS NOT NULL
                    THEN epoch END) AS best_epoch
    FROM per_epoch
    GROUP BY experiment_id, trial_id
), reached AS (
    SELECT experiment_id, trial_id, max(rung) AS rung
    FROM automl.rungs
    GROUP BY experiment_id, trial_id
)
SELECT e.id AS experiment_id,
       e.name AS experiment,
       e.method,
       t.trial_id,
       t.status,
       t.bracket,
       t.batch,
       r.rung,
       coalesce(p.epochs, 0) AS epochs,
       p.best_valid_accuracy,
       p.best_epoch,
       p.final_valid_accuracy,
       p.final_valid_loss,
       p.best_valid_loss,
       coalesce(p.train_seconds, 0) AS train_seconds,
       t.config,
       t.error,
       t.created_at
FROM automl.trials t
JOIN automl.experiments e ON e.id = t.experiment_id
LEFT JOIN per_trial p ON p.experiment_id = t.experiment_id AND p.trial_id = t.trial_id
LEFT JOIN reached r ON r.experiment_id = t.experiment_id AND r.trial_id = t.trial_id
"""

LEADERBOARD_SQL = """
CREATE OR REPLACE VIEW automl.leaderboard AS
SELECT row_number() OVER (PARTITION BY s.experiment_id
                          ORDER BY s.best_valid_accuracy IS NULL, s.status = 'failed',
                                   s.best_valid_accuracy DESC, s.trial_id) AS rank,
       s.experiment_id, s.experiment, s.method, s.trial_id, s.status, s.bracket, s.batch,
       s.rung, s.epochs, s.best_valid_accuracy, s.best_epoch, s.final_valid_accuracy,
       s.final_valid_loss, s.best_valid_loss, s.train_seconds, s.config, s.error, s.created_at
FROM automl.trial_summary s
"""

#: The views this module creates, in dependency order.
VIEWS = ("automl.trial_summary", "automl.leaderboard")


def create_views(cur: Any, dialect: Any = None) -> None:
    """Create (or replace) ``automl.trial_summary`` and ``automl.leaderboard``.

    Runs inside the caller's transaction (a migration); requires the tables of
    migration 1. Promises nothing beyond the two statements: it does not commit.
    """
    del dialect  # identical SQL on PostgreSQL and Greenplum
    cur.execute(TRIAL_SUMMARY_SQL)
    cur.execute(LEADERBOARD_SQL)
