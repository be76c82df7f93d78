"""Operators: each ``execute()`` is one call into ``automl_core``.

Arguments are keyword-only primitives; the ones a run may change are templated from the
DAG's params (rendered as text: a template never becomes an import path, code or SQL,
and :mod:`automl_airflow.task_values` turns the text back into values). The database URL
comes from :class:`~automl_airflow.hooks.GreenplumHook`, built only when a task runs.
automl_core and the hook (the Postgres provider, psycopg) are imported only when a task
runs, so parsing a DAG file stays cheap: the DAG processor parses it again for every task
that ends in the triggerer (Airflow 3.3 queues a task callback for each).

Every core function is idempotent and rebuilds its state from the database, so a task
that is retried or cleared continues where the last attempt stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from automl_airflow.task_values import AUTOML_CONN_ID, export_target, opt_str, xcom_summary
from automl_airflow.triggers import EXPERIMENT_TASK

if TYPE_CHECKING:
    from airflow.sdk import Context

    from automl_airflow.hooks import GreenplumHook


# Downstream tasks find the experiment by the name its creation returned.
EXPERIMENT_NAME = f"{{{{ ti.xcom_pull(task_ids='{EXPERIMENT_TASK}')['name'] }}}}"


def aws_s3_client(aws_conn_id: str | None) -> Any:
    """The boto3 S3 client of an Airflow AWS connection, with automl's timeouts and
    retries (``automl_core.artifacts.s3_client_config``; the connection's own botocore
    settings win)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from automl_core.artifacts import s3_client_config

    hook = S3Hook(aws_conn_id=aws_conn_id)
    return hook.get_client_type(region_name=hook.region_name, config=s3_client_config(hook.config))


class AutomlOperator(BaseOperator):
    """Base: the lazily built database hook shared by every operator here.

    :param automl_conn_id: the Airflow connection of the data/results database. Absent,
        automl_core uses ``AUTOML_DB_URL`` or its embedded server.
    """

    ui_color = "#e8f4fd"

    def __init__(self, *, automl_conn_id: str = AUTOML_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automl_conn_id = automl_conn_id

    @cached_property
    def hook(self) -> GreenplumHook:
        from automl_airflow.hooks import GreenplumHook

        return GreenplumHook(automl_conn_id=self.automl_conn_id)

    @property
    def db_url(self) -> str | None:
        return self.hook.get_automl_url()


class PrepareDataOperator(AutomlOperator):
    """Pack the table into partitions (loading a built-in data set first if asked).

    :param table: the source table.
    :param partitions: how many partitions (one per worker) to pack it into.
    :param load_if_missing: a built-in data set to load when the table does not exist.
    """

    template_fields: Sequence[str] = ("table", "load_if_missing")

    def __init__(
        self, *, table: str, partitions: int, load_if_missing: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.partitions = partitions
        self.load_if_missing = load_if_missing

    def execute(self, context: Context) -> dict[str, Any]:
        from automl_core.data.ensure import ensure_prepared

        return xcom_summary(
            ensure_prepared(
                str(self.table),
                partitions=self.partitions,
                load_if_missing=opt_str(self.load_if_missing),
                db_url=self.db_url,
            )
        )


class ExperimentStepOperator(AutomlOperator):
    """Base of the steps that act on an existing experiment, found by name."""

    template_fields: Sequence[str] = ("experiment",)

    def __init__(self, *, experiment: str = EXPERIMENT_NAME, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment

    def _start_in_triggerer(self, trigger: str, timeout_s: int, **kwargs: Any) -> None:
        """Let the scheduler start this task in the triggerer (``automl_airflow.triggers``:
        no worker process); ``trigger`` is the class's name there. The trigger reads the
        experiment's name from ``create_experiment``'s XCom itself (no template is
        rendered there). ``dag.test()`` runs ``execute()`` instead."""
        from datetime import timedelta

        from airflow.triggers.base import StartTriggerArgs

        # A literal name (no template) is passed as is.
        templated = any(mark in str(self.experiment) for mark in ("{{", "{%"))
        named = {} if templated else {"experiment": str(self.experiment)}
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=f"automl_airflow.triggers.{trigger}",
            next_method="execute_complete",
            trigger_kwargs={"automl_conn_id": self.automl_conn_id, **kwargs, **named},
            timeout=timedelta(seconds=timeout_s),
        )


class TrainingEngineOperator(ExperimentStepOperator):
    """The search's one training engine: it owns the workers and trains every request.

    It runs beside the bracket (or batch) groups for the whole search, walking the same
    plan they show, and ends when the search is complete. A retry resumes from the
    database and the checkpoints.

    :param cluster: the name of one of the deployment's clusters (templated from the
        run's params); empty for ``default_cluster``. Never an address: see
        :mod:`automl_airflow.clusters`.
    :param clusters: the spec's named clusters (name -> address); the environment's
        ``AUTOML_DASK_CLUSTERS`` adds to them.
    :param default_cluster: the spec's default address; None for ``AUTOML_DASK_ADDRESS``
        or a local cluster with one worker per partition.
    :param workers: local workers (default: one per partition).
    """

    template_fields: Sequence[str] = ("experiment", "cluster")
    ui_color = "#e8fde9"

    def __init__(
        self,
        *,
        cluster: str | None = None,
        clusters: Mapping[str, str] | None = None,
        default_cluster: str | None = None,
        workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.clusters = dict(clusters or {})
        self.default_cluster = default_cluster
        self.workers = workers

    def execute(self, context: Context) -> dict[str, Any]:
        from automl_airflow.clusters import allowed_clusters, resolve_cluster
        from automl_core.experiment import run_engine
        from automl_core.experiment.stopping import StopRequest

        address = resolve_cluster(
            opt_str(self.cluster), allowed_clusters(self.clusters), self.default_cluster
        )
        self._stop = StopRequest()
        result = run_engine(
            str(self.experiment),
            workers=self.workers,
            cluster=address,
            db_url=self.db_url,
            stop=self._stop,
            # Each rung is two tasks here: the deepest bracket's chain of them is the
            # run's critical path, so its rungs train first.
            deep_brackets_first=True,
        )
        self.log.info("Search trained: %s", result)
        return xcom_summary(result)

    def on_kill(self) -> None:
        """The task is told to stop (SIGTERM): the engine stops cleanly within a second.

        Airflow calls this from its signal handler in the task's process while
        ``execute`` runs; the engine abandons its jobs, marks the experiment
        ``interrupted`` and raises EngineInterrupted; a retry or a clear resumes it.
        """
        stop = getattr(self, "_stop", None)
        if stop is not None:
            import signal

            stop.request(signal.SIGTERM)


class PromoteRungOperator(ExperimentStepOperator):
    """Hyperband: keep the best ``floor(n_i/eta)`` of a rung for the next one.

    Under a scheduler it runs in the triggerer (:class:`PromotionTrigger`, the same step);
    ``execute`` is the ``dag.test()`` path.
    """

    def __init__(self, *, bracket: int, rung: int, timeout_s: int = 3600, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bracket = bracket
        self.rung = rung
        self._start_in_triggerer("PromotionTrigger", timeout_s, bracket=bracket, rung=rung)

    def execute(self, context: Context) -> dict[str, Any]:
        from automl_core.experiment import promote_rung

        result = promote_rung(str(self.experiment), self.bracket, self.rung, db_url=self.db_url)
        self.log.info("Promoted %s; stopped %s", result["promoted"], result["stopped"])
        return xcom_summary(result)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        """Not reached: the trigger ends the task itself (kept for ``start_trigger_args``)."""
        return event


class ProposeBatchOperator(ExperimentStepOperator):
    """Grid, random, hyperopt: the configurations of one batch."""

    def __init__(self, *, batch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    def execute(self, context: Context) -> dict[str, Any]:
        from automl_core.experiment import propose_batch

        trials = propose_batch(str(self.experiment), self.batch, db_url=self.db_url)
        return xcom_summary({"batch": self.batch, "trials": trials})


class FinalizeOperator(ExperimentStepOperator):
    """Pick the best model; write the leaderboard and the report; export the model.

    :param export_to: a folder or ``s3://bucket/prefix``; empty for no export.
    :param report_dir: the folder under which each experiment's HTML report goes, in a
        sub-folder named after it (default: ``reports`` in the project home; a relative
        folder is taken inside the project home, and so is a relative export folder).
    :param aws_conn_id: an Airflow AWS connection whose boto3 S3 client is used for an
        ``s3://`` export; without it boto3 finds credentials itself (environment, role).
    """

    template_fields: Sequence[str] = ("experiment", "export_to", "report_dir")

    def __init__(
        self,
        *,
        export_to: str | None = None,
        report_dir: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.export_to = export_to
        self.report_dir = report_dir
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from automl_core.config import project_home
        from automl_core.experiment import finalize

        name = str(self.experiment)
        # Relative folders are taken inside the project home, as export_target does.
        home = project_home()
        export_to = export_target(self.export_to)
        report_base = Path(opt_str(self.report_dir) or "reports")
        report_dir = (report_base if report_base.is_absolute() else home / report_base) / name
        use_conn = bool(export_to and export_to.startswith("s3://") and self.aws_conn_id)
        result = finalize(
            name,
            export_to=export_to,
            report_dir=report_dir,
            s3_client=aws_s3_client(self.aws_conn_id) if use_conn else None,
            db_url=self.db_url,
        )
        summary = xcom_summary(result)
        self.log.info("Best trial: %s", {k: v for k, v in summary.items() if k != "report"})
        for key in ("report", "report_url", "export"):
            if summary.get(key):
                self.log.info("%s: %s", key.replace("_", " ").capitalize(), summary[key])
        return summary
