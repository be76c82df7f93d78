"""The training steps of a DAG: ask the engine for a rung or a batch, and wait for it.

They wait deferrably (``automl_airflow.triggers``): under a scheduler they start and end
in the triggerer, holding no worker process and no slot while the engine trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from automl_airflow.operators import ExperimentStepOperator
from automl_airflow.triggers import ENGINE_ENDED, engine_gone_message, request_summary

if TYPE_CHECKING:
    from airflow.sdk import Context


class _AwaitTrainingOperator(ExperimentStepOperator):
    """Base of the training steps: ask the engine for a rung or batch, wait deferrably.

    Under a scheduler the task starts in the triggerer: :class:`RequestsDoneTrigger`
    submits the requests (a second submit adds nothing) and ends the task when they are
    done, so no worker process or slot is used. ``execute`` (``dag.test()``) takes the
    same steps on a worker and defers to the same trigger; while no engine runs it
    reschedules itself instead, so ``dag.test()``, which runs one task at a time, reaches
    the engine, and fails once the run's engine task has ended without training them.

    :param timeout_s: how long to wait for the engine before the task fails.
    """

    ui_color = "#e8fde9"
    ENGINE_START_RECHECK_S = 2

    def __init__(self, *, timeout_s: int = 24 * 3600, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout_s = timeout_s

    def where(self) -> dict[str, int]:
        """The rung (``bracket``, ``rung``) or ``batch`` this task trains."""
        raise NotImplementedError

    def submit(self) -> list[int]:
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        from datetime import UTC, datetime, timedelta

        from airflow.sdk.exceptions import AirflowRescheduleException

        from automl_airflow.triggers import RequestsDoneTrigger, engine_task_state
        from automl_core.experiment import request_progress
        from automl_core.store.repository import ENGINE_SILENT_S
        from automl_core.store.repository import RequestState as State

        def progress() -> dict[str, int]:
            return request_progress(str(self.experiment), db_url=self.db_url, **self.where())

        trials = self.submit()
        counts = progress()
        self.log.info("Asked the engine to train trials %s (%s)", trials, counts)
        if counts[State.QUEUED] + counts[State.RUNNING] == 0:
            return request_summary(counts)
        ti = context["ti"]
        state = engine_task_state(ti.dag_id, ti.run_id)
        if state in ENGINE_ENDED:
            counts = progress()  # an engine that ended since the first read did it
            if counts[State.QUEUED] + counts[State.RUNNING] == 0:
                return request_summary(counts)
            raise RuntimeError(engine_gone_message(state, self.what, self.experiment, counts))
        if not 0 <= counts["engine_heartbeat_age_s"] < ENGINE_SILENT_S:  # no engine runs
            recheck = datetime.now(UTC) + timedelta(seconds=self.ENGINE_START_RECHECK_S)
            raise AirflowRescheduleException(recheck)
        self.defer(
            trigger=RequestsDoneTrigger(
                experiment=str(self.experiment),
                automl_conn_id=self.automl_conn_id,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                **self.where(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout_s),
        )
        raise AssertionError("defer() returns only by raising")  # pragma: no cover

    @property
    def what(self) -> str:
        return " ".join(f"{key} {value}" for key, value in self.where().items())

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        status = event.get("status") if isinstance(event, Mapping) else None
        if status == "engine_lost":
            raise RuntimeError(
                f"The training engine of {self.experiment} stopped writing its heartbeat; "
                "clear the engine task to resume it, then this task."
            )
        if status == "engine_ended":
            assert isinstance(event, Mapping)
            state = str(event.get("engine_state"))
            raise RuntimeError(engine_gone_message(state, self.what, self.experiment, event))
        return event


class TrainRungOperator(_AwaitTrainingOperator):
    """Hyperband: the engine trains every trial of one rung to the rung's epochs.

    Rung 0 samples the bracket's configurations first.
    """

    def __init__(self, *, bracket: int, rung: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bracket = bracket
        self.rung = rung
        self._start_in_triggerer(
            "RequestsDoneTrigger", self.timeout_s, bracket=bracket, rung=rung, submit=True
        )

    def where(self) -> dict[str, int]:
        return {"bracket": self.bracket, "rung": self.rung}

    def submit(self) -> list[int]:
        from automl_core.experiment import submit_rung

        return submit_rung(str(self.experiment), self.bracket, self.rung, db_url=self.db_url)


class TrainBatchOperator(_AwaitTrainingOperator):
    """Grid, random, hyperopt: the engine trains every trial of one batch."""

    def __init__(self, *, batch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self._start_in_triggerer("RequestsDoneTrigger", self.timeout_s, batch=batch, submit=True)

    def where(self) -> dict[str, int]:
        return {"batch": self.batch}

    def submit(self) -> list[int]:
        from automl_core.experiment import submit_batch

        return submit_batch(str(self.experiment), self.batch, db_url=self.db_url)
