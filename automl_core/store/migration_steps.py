"""The versions of the ``automl`` schema: one function per version, in ``MIGRATIONS``.

``automl_core.store.migrations`` applies them. Each ``apply(cur, dialect)`` runs its DDL
through the cursor. To add a migration, write ``_vN_what(cur, dialect)`` (or import one)
and append ``Migration(N, "what", _vN_what)`` to ``MIGRATIONS``. Never edit an applied
migration: databases in the field already ran it; add a new one instead. Their SQL keeps
its literal text (statuses included): it is history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql

from automl_core.store.dialect import Dialect
from automl_core.store.views import create_views

SCHEMA = "automl"


@dataclass(frozen=True)
class Migration:
    """One schema version: ``apply(cursor, dialect)`` runs its statements."""

    version: int
    name: str
    apply: Callable[[Any, Dialect], None]


def _t(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


def _v1_initial_schema(cur: Any, dialect: Dialect) -> None:
    """Every table of docs/reference.md. Status lists are frozen here on purpose:
    a later change to the allowed values is a new migration."""
    experiments_fk = dialect.references(_t("experiments"), "id")
    by_experiment = dialect.distributed_by("experiment_id")
    statements = [
        sql.SQL(
            """CREATE TABLE {t} (
                name text PRIMARY KEY,
                source text,
                feature_shape integer[] NOT NULL,
                class_values jsonb NOT NULL,
                num_classes integer NOT NULL,
                partitions integer NOT NULL CHECK (partitions >= 1),
                n_train bigint NOT NULL,
                n_valid bigint NOT NULL,
                rows_per_partition jsonb,
                normalization jsonb,
                source_table text,
                packed_table text,
                created_at timestamptz NOT NULL DEFAULT now()
            ){dist}"""
        ).format(t=_t("datasets"), dist=dialect.distributed_by("name")),
        # Replicated on Greenplum: it is tiny and needs unique keys on both id and name.
        sql.SQL(
            """CREATE TABLE {t} (
                id bigserial PRIMARY KEY,
                name text NOT NULL UNIQUE,
                method text NOT NULL,
                dataset text NOT NULL,
                spec jsonb NOT NULL,
                seed bigint NOT NULL,
                status text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'completed', 'failed')),
                airflow_run_id text,
                created_at timestamptz NOT NULL DEFAULT now(),
                finished_at timestamptz
            ){dist}"""
        ).format(t=_t("experiments"), dist=dialect.distributed_replicated()),
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                trial_id integer NOT NULL,
                config jsonb NOT NULL,
                bracket integer,
                batch integer,
                status text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'stopped')),
                error text,
                created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (experiment_id, trial_id)
            ){dist}"""
        ).format(t=_t("trials"), fk=experiments_fk, dist=by_experiment),
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                trial_id integer NOT NULL,
                epoch integer NOT NULL CHECK (epoch >= 1),
                train_loss double precision,
                train_accuracy double precision,
                valid_loss double precision,
                valid_accuracy double precision,
                seconds double precision,
                samples bigint,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (experiment_id, trial_id, epoch)
            ){dist}"""
        ).format(t=_t("trial_epochs"), fk=experiments_fk, dist=by_experiment),
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                bracket integer NOT NULL,
                rung integer NOT NULL,
                trial_id integer NOT NULL,
                target_epochs integer NOT NULL,
                metric double precision,
                promoted boolean,
                reason text,
                PRIMARY KEY (experiment_id, bracket, rung, trial_id)
            ){dist}"""
        ).format(t=_t("rungs"), fk=experiments_fk, dist=by_experiment),
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                trial_id integer NOT NULL,
                epoch integer NOT NULL CHECK (epoch >= 1),
                state bytea,
                uri text,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (experiment_id, trial_id),
                CHECK (state IS NOT NULL OR uri IS NOT NULL)
            ){dist}"""
        ).format(t=_t("checkpoints"), fk=experiments_fk, dist=by_experiment),
        # "partition" is a keyword on Greenplum; it is quoted wherever it is used.
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                trial_id integer NOT NULL,
                epoch integer NOT NULL CHECK (epoch >= 1),
                "partition" integer NOT NULL,
                kind text NOT NULL,
                worker text,
                started_at double precision,
                ended_at double precision,
                attempt integer NOT NULL DEFAULT 1,
                PRIMARY KEY (experiment_id, trial_id, epoch, "partition", kind)
            ){dist}"""
        ).format(t=_t("mop_jobs"), fk=experiments_fk, dist=by_experiment),
    ]
    for statement in statements:
        cur.execute(statement)


def _v3_training_requests(cur: Any, dialect: Dialect) -> None:
    """The training engine's work queue and its lease (docs/reference.md, the engine).

    A request asks the engine to train one trial to ``target_epoch``; it belongs to one
    rung of a bracket (Hyperband) or to one batch. ``engines`` holds one row per
    experiment whose engine has started: who runs it and when it last said so.
    """
    experiments_fk = dialect.references(_t("experiments"), "id")
    by_experiment = dialect.distributed_by("experiment_id")
    cur.execute(
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                trial_id integer NOT NULL,
                target_epoch integer NOT NULL CHECK (target_epoch >= 1),
                bracket integer,
                rung integer,
                batch integer,
                state text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'done', 'failed')),
                error text,
                requested_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (experiment_id, trial_id, target_epoch),
                CHECK ((bracket IS NULL) = (rung IS NULL)),
                CHECK ((bracket IS NULL) <> (batch IS NULL))
            ){dist}"""
        ).format(t=_t("training_requests"), fk=experiments_fk, dist=by_experiment)
    )
    cur.execute(
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint PRIMARY KEY{fk},
                host text NOT NULL,
                pid integer NOT NULL,
                starts integer NOT NULL DEFAULT 1,
                started_at timestamptz NOT NULL DEFAULT now(),
                heartbeat_at timestamptz NOT NULL DEFAULT now(),
                stopped_at timestamptz
            ){dist}"""
        ).format(t=_t("engines"), fk=experiments_fk, dist=by_experiment)
    )


def _v4_best_checkpoints(cur: Any, dialect: Dialect) -> None:
    """The state of each trial at its best epoch: the model ranking and export agree on.

    ``checkpoints`` keeps the latest state (training resumes from it); this table keeps
    the state at the trial's best epoch (the leaderboard's ``best_epoch``: the first
    epoch with the highest validation accuracy), written by ``save_checkpoint`` when the
    epoch it saves is that epoch. Existing trials whose latest checkpoint is their best
    epoch are copied in; the others' best state was overwritten before this version.
    """
    cur.execute(
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                trial_id integer NOT NULL,
                epoch integer NOT NULL CHECK (epoch >= 1),
                state bytea,
                uri text,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (experiment_id, trial_id),
                CHECK (state IS NOT NULL OR uri IS NOT NULL)
            ){dist}"""
        ).format(
            t=_t("best_checkpoints"),
            fk=dialect.references(_t("experiments"), "id"),
            dist=dialect.distributed_by("experiment_id"),
        )
    )
    cur.execute(
        sql.SQL(
            "INSERT INTO {best} (experiment_id, trial_id, epoch, state, uri) "
            "SELECT c.experiment_id, c.trial_id, c.epoch, c.state, c.uri FROM {latest} c "
            "JOIN {summary} s ON s.experiment_id = c.experiment_id "
            "AND s.trial_id = c.trial_id AND s.best_epoch = c.epoch"
        ).format(
            best=_t("best_checkpoints"),
            latest=_t("checkpoints"),
            summary=_t("trial_summary"),
        )
    )


def _v5_experiment_interrupted(cur: Any, dialect: Dialect) -> None:
    """Experiments may be ``interrupted``: stopped by a signal, resumed by a rerun.

    The status check of version 1 is replaced (by its name, PostgreSQL's default one)
    with one that also allows the new status.
    """
    experiments = _t("experiments")
    cur.execute(
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS experiments_status_check").format(
            experiments
        )
    )
    cur.execute(
        sql.SQL(
            "ALTER TABLE {} ADD CONSTRAINT experiments_status_check "
            "CHECK (status IN ('running', 'completed', 'failed', 'interrupted'))"
        ).format(experiments)
    )


def _v6_experiment_lineage(cur: Any, dialect: Dialect) -> None:
    """``experiments.parent_experiment``: the name of the experiment whose best trials a
    search's space was narrowed to (``automl run --narrow-from``); NULL for the others.

    A name, not an id: it is what a user types and reads, and names are unique and
    never change. No foreign key (Greenplum declares none).
    """
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS parent_experiment text").format(
            _t("experiments")
        )
    )


def _v7_evaluations(cur: Any, dialect: Dialect) -> None:
    """``evaluations``: an experiment's model scored on a labelled table
    (``automl evaluate``), the latest result per table: which trial and epoch, the rows,
    held-out accuracy, mean cross-entropy and the confusion matrix (rows: true class,
    columns: predicted, in ``class_values`` order)."""
    cur.execute(
        sql.SQL(
            """CREATE TABLE {t} (
                experiment_id bigint NOT NULL{fk},
                table_name text NOT NULL,
                trial_id integer NOT NULL,
                epoch integer NOT NULL,
                rows bigint NOT NULL CHECK (rows > 0),
                accuracy double precision NOT NULL,
                loss double precision NOT NULL,
                class_values jsonb NOT NULL,
                confusion jsonb NOT NULL,
                evaluated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (experiment_id, table_name)
            ){dist}"""
        ).format(
            t=_t("evaluations"),
            fk=dialect.references(_t("experiments"), "id"),
            dist=dialect.distributed_by("experiment_id"),
        )
    )


def _v9_data_as_packed(cur: Any, dialect: Dialect) -> None:
    """Which packing of a data set an experiment trained on, and what it was packed from.

    - ``datasets.source_state``: the source table's oid and row count when it was packed
      (``{"oid": ..., "rows": ...}``), so that a table replaced or grown since is packed
      again rather than searched as it was (``automl_core.data.ensure``).
    - ``experiments.data``: the data set's row (``DatasetInfo``) as the experiment was
      created, so that its export and predictions keep their shape, classes and
      normalisation after the data set is packed again. NULL for older experiments,
      which keep their data set from being packed again with other values.
    """
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS source_state jsonb").format(_t("datasets"))
    )
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS data jsonb").format(_t("experiments"))
    )


def _v10_feature_names(cur: Any, dialect: Dialect) -> None:
    """``datasets.feature_names``: the names of a data set's features, one per flattened
    feature in order (jsonb list of text), for one loaded from a CSV file (its columns,
    the label column left out), so that an exported model can take a DataFrame's columns
    by name. NULL for other sources and for data sets packed before this version (a CSV
    loaded and prepared again gets its names)."""
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS feature_names jsonb").format(
            _t("datasets")
        )
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _v1_initial_schema),
    Migration(2, "leaderboard views", create_views),
    Migration(3, "training requests and engines", _v3_training_requests),
    Migration(4, "best-epoch checkpoints", _v4_best_checkpoints),
    Migration(5, "experiment status interrupted", _v5_experiment_interrupted),
    Migration(6, "experiment lineage", _v6_experiment_lineage),
    Migration(7, "held-out evaluations", _v7_evaluations),
    Migration(8, "leaderboard ranks failed trials after the others", create_views),
    Migration(9, "data sets as packed: source state, experiments' data", _v9_data_as_packed),
    Migration(10, "data sets' feature names", _v10_feature_names),
)
