"""Triggers: the training and promotion tasks of a DAG run live in Airflow's triggerer.

The engine task trains and promotes on its own; a rung's tasks only take the same
idempotent steps and say when they are done. So they start in the triggerer
(``start_from_trigger``) and end there with ``TaskSuccessEvent``: no worker process is
started for them (each would cost a Python start and Airflow's imports, CPU taken from
the training workers on the same hosts), and no worker slot is held while the engine
trains. ``dag.test()`` still runs them through ``execute()``.

``RequestsDoneTrigger`` submits its rung's (or batch's) requests, then polls
``automl.training_requests`` over one connection (through automl_core, in a thread:
psycopg2 blocks) until none is queued or running. ``PromotionTrigger`` takes the
promotion step and ends the task with its decision. The database URL comes from the
Airflow connection, resolved in the triggerer, so no credential is ever stored in a
trigger's serialized arguments.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from automl_airflow.task_values import xcom_summary

# The engine promotes on its own; this only says when the Airflow task is done.
POLL_S = 1.0
# The task whose XCom names the experiment (its ``name``).
EXPERIMENT_TASK = "create_experiment"
# Reading that XCom through the triggerer's supervisor; past this, the trigger fails.
XCOM_DEADLINE_S = 60.0
# An engine that has not written its heartbeat for this long is taken for lost: the task
# resumes on a worker, fails, and its retries (or a person) take over.
ENGINE_LOST_S = 600.0


class _ExperimentTrigger(BaseTrigger):
    """Base: finds the experiment and the results database of one step of a DAG run.

    :param automl_conn_id: the Airflow connection of the results database.
    :param experiment: the experiment's name; None: read it from the XCom of
        ``experiment_task`` (a task started in the triggerer has no rendered templates).
    :param where: the step's place: ``bracket`` and ``rung`` (Hyperband), or ``batch``.
    """

    def __init__(
        self,
        *,
        automl_conn_id: str,
        experiment: str | None = None,
        experiment_task: str = EXPERIMENT_TASK,
        bracket: int | None = None,
        rung: int | None = None,
        batch: int | None = None,
    ) -> None:
        super().__init__()
        self.automl_conn_id = automl_conn_id
        self.experiment = experiment
        self.experiment_task = experiment_task
        self.bracket = bracket
        self.rung = rung
        self.batch = batch

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "automl_conn_id": self.automl_conn_id,
                "experiment": self.experiment,
                "experiment_task": self.experiment_task,
                "bracket": self.bracket,
                "rung": self.rung,
                "batch": self.batch,
                **self.options(),
            },
        )

    def options(self) -> dict[str, Any]:
        """A subclass's own keyword arguments, for ``serialize``."""
        return {}

    @property
    def what(self) -> str:
        if self.batch is not None:
            return f"batch {self.batch}"
        return f"bracket {self.bracket} rung {self.rung}"

    async def connect(self) -> tuple[str, str | None]:
        """The experiment's name and the database URL, read in threads of their own
        (``thread_sensitive=False``: one slow call never holds up the other triggers)."""
        from automl_airflow.hooks import GreenplumHook

        hook = GreenplumHook(automl_conn_id=self.automl_conn_id)
        url = await in_thread(hook.get_automl_url)()
        if self.experiment:
            return self.experiment, url
        # Airflow 3.3 does not render an XCom template in a task started in the triggerer
        # (its xcom_pull asks for a slice of every map index, a message the triggerer's
        # supervisor does not take, and the render never returns); map_indexes=-1 asks
        # for the one XCom, a message it takes.
        ti: Any = self.task_instance
        pull = in_thread(ti.xcom_pull)(task_ids=self.experiment_task, map_indexes=-1)
        pulled = await asyncio.wait_for(pull, timeout=XCOM_DEADLINE_S)
        if not isinstance(pulled, dict) or not isinstance(pulled.get("name"), str):
            raise RuntimeError(
                f"The XCom of {self.experiment_task} names no experiment: {pulled!r}"
            )
        self.experiment = pulled["name"]
        return self.experiment, url


def in_thread(fn: Any) -> Any:
    """``fn`` as a coroutine function run in a thread of its own (asgiref)."""
    from asgiref.sync import sync_to_async

    return sync_to_async(fn, thread_sensitive=False)


class RequestsDoneTrigger(_ExperimentTrigger):
    """Fires when every training request of one rung or batch is done (or failed).

    Takes ``_ExperimentTrigger``'s arguments, and:

    :param poll_s: seconds between two reads of the requests.
    :param submit: first submit the rung's or batch's requests (idempotent, torch-free),
        as the task's ``execute`` does when it runs on a worker.
    """

    def __init__(self, *, poll_s: float = POLL_S, submit: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_s = poll_s
        self.submit = submit

    def options(self) -> dict[str, Any]:
        return {"poll_s": self.poll_s, "submit": self.submit}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from automl_core.experiment.api import ProgressReader

        name, url = await self.connect()
        if self.submit:
            trials = await in_thread(self._submit)(name, url)
            self.log.info("Asked the engine to train trials %s (%s)", trials, self.what)
        reader = await in_thread(ProgressReader)(
            name, bracket=self.bracket, rung=self.rung, batch=self.batch, db_url=url
        )
        try:
            async for event in self._watch(in_thread(reader.counts)):
                yield event
                return
        finally:
            await in_thread(reader.close)()

    def _submit(self, name: str, url: str | None) -> list[int]:
        from automl_core.experiment import submit_batch, submit_rung

        if self.batch is not None:
            return submit_batch(name, self.batch, db_url=url)
        assert self.bracket is not None and self.rung is not None
        return submit_rung(name, self.bracket, self.rung, db_url=url)

    async def _watch(self, read: Any) -> AsyncIterator[TriggerEvent]:
        from automl_core.store.repository import RequestState as State

        last: tuple[int, int] | None = None
        while True:
            counts = await read()
            unfinished = counts[State.QUEUED] + counts[State.RUNNING]
            finished = counts[State.DONE] + counts[State.FAILED]
            if (finished, unfinished) != last:
                self.log.info(
                    "%s of %s: %d of %d trials trained (%d failed)",
                    self.what,
                    self.experiment,
                    finished,
                    finished + unfinished,
                    counts[State.FAILED],
                )
                last = (finished, unfinished)
            if unfinished == 0:
                yield TaskSuccessEvent(xcoms={"return_value": request_summary(counts)})
                return
            if counts["engine_heartbeat_age_s"] > ENGINE_LOST_S:
                yield TriggerEvent({"status": "engine_lost", **request_summary(counts)})
                return
            await asyncio.sleep(self.poll_s)


def request_summary(counts: dict[str, int]) -> dict[str, Any]:
    """A training task's XCom: how many of its requests are done and how many failed."""
    from automl_core.store.repository import RequestState as State

    return {State.DONE.value: counts[State.DONE], State.FAILED.value: counts[State.FAILED]}


class PromotionTrigger(_ExperimentTrigger):
    """Takes a rung's promotion step and ends the task with the decision.

    The engine has usually promoted already (milliseconds after the rung's last epoch);
    then this reads the recorded decision. Its XCom is what ``PromoteRungOperator``
    returns when it runs on a worker. Takes ``_ExperimentTrigger``'s arguments
    (``bracket`` and ``rung``).
    """

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from automl_core.experiment import promote_rung

        name, url = await self.connect()
        assert self.bracket is not None and self.rung is not None
        result = await in_thread(promote_rung)(name, self.bracket, self.rung, db_url=url)
        self.log.info("Promoted %s; stopped %s", result["promoted"], result["stopped"])
        yield TaskSuccessEvent(xcoms={"return_value": xcom_summary(result)})
