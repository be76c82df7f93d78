"""Triggers: the training and promotion tasks of a DAG run live in Airflow's triggerer.

The engine task trains and promotes on its own; a rung's tasks only take the same
idempotent steps and say when they are done. So they start in the triggerer
(``start_from_trigger``) and end there with ``TaskSuccessEvent``: no worker process is
started for them (each would cost a Python start and Airflow's imports, CPU taken from
the training workers on the same hosts), and no worker slot is held while the engine
trains. ``dag.test()`` still runs them through ``execute()``.

``RequestsDoneTrigger`` submits its rung's (or batch's) requests, then polls
``automl.training_requests`` (through automl_core, in a thread: psycopg2 blocks; every
trigger of the triggerer shares one connection to a database) until none is queued or
running. It fails the task when no engine will train them: the run's engine task ended
(failed, skipped, or marked success by hand), or it runs without writing its heartbeat.
``PromotionTrigger`` takes the promotion step and ends the task with its decision. The database URL comes from the
Airflow connection, resolved in the triggerer, so no credential is ever stored in a
trigger's serialized arguments.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from automl_airflow.task_values import xcom_summary

log = logging.getLogger(__name__)

# The engine promotes on its own; this only says when the Airflow task is done.
POLL_S = 1.0
# The task whose XCom names the experiment (its ``name``).
EXPERIMENT_TASK = "create_experiment"
# Reading that XCom through the triggerer's supervisor; past this, the trigger fails.
XCOM_DEADLINE_S = 60.0
# An engine that has not written its heartbeat for this long, while its task runs (or
# where its state cannot be read), is taken for lost: the task resumes on a worker, fails,
# and its retries (or a person) take over. One that is queued or waits for its retry is
# waited for, however long: the training pool may be busy with another search.
ENGINE_LOST_S = 600.0
# The DAG's engine task (dag_factory); its state is read every ENGINE_STATE_POLL_S.
ENGINE_TASK = "engine"
ENGINE_STATE_POLL_S = 5.0
# The engine task's states after which it trains nothing more in this run.
ENGINE_ENDED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})


def engine_task_state(dag_id: str, run_id: str, task_id: str = ENGINE_TASK) -> str | None:
    """The Airflow state of task ``task_id`` in run ``run_id``; None when it has none yet
    or it cannot be read (the wait then rests on the engine's heartbeat alone).

    Asks the process's supervisor (the triggerer's, or the task runner's), as Airflow's
    own ``WorkflowTrigger`` does: a trigger has no metadata database.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    try:
        states = RuntimeTaskInstance.get_task_states(
            dag_id=dag_id, task_ids=[task_id], run_ids=[run_id]
        )
    except Exception as exc:
        log.warning("Could not read the state of task %s: %s", task_id, exc)
        return None
    state = (states.get(run_id) or {}).get(task_id)
    return str(getattr(state, "value", state)) if state is not None else None


def engine_gone_message(
    state: str, what: str, experiment: str | None, counts: Mapping[str, int]
) -> str:
    """Why a training task fails when its run's engine task ended before training it."""
    from automl_core.store.repository import RequestState as State

    left = counts[State.QUEUED] + counts[State.RUNNING]
    return (
        f"The engine task of this run ended ({state}) with {left} trial(s) of {what} of "
        f"{experiment} still to train, and nothing else will train them: see the engine "
        "task's log, then clear it to resume the search, and this task after it."
    )


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
    :param dag_id: with ``run_id``, the run whose engine task's state is watched where the
        trigger has no task instance (``dag.test()`` runs it inline without one).
    """

    def __init__(
        self,
        *,
        poll_s: float = POLL_S,
        submit: bool = False,
        dag_id: str | None = None,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.poll_s = poll_s
        self.submit = submit
        self.dag_id = dag_id
        self.run_id = run_id

    def options(self) -> dict[str, Any]:
        return {
            "poll_s": self.poll_s,
            "submit": self.submit,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from automl_core.experiment.progress import ProgressReader

        name, url = await self.connect()
        if self.submit:
            trials = await in_thread(self._submit)(name, url)
            self.log.info("Asked the engine to train trials %s (%s)", trials, self.what)
        reader = await in_thread(ProgressReader)(
            name, bracket=self.bracket, rung=self.rung, batch=self.batch, db_url=url
        )
        try:
            async for event in self._watch(in_thread(reader.counts), self._engine_state):
                yield event
                return
        finally:
            await in_thread(reader.close)()

    async def _engine_state(self) -> str | None:
        """The engine task's state in this run; None where it cannot be read."""
        ti: Any = getattr(self, "task_instance", None)
        dag_id, run_id = (ti.dag_id, ti.run_id) if ti is not None else (self.dag_id, self.run_id)
        if dag_id is None or run_id is None:
            return None
        state: str | None = await in_thread(engine_task_state)(dag_id, run_id)
        return state

    def _submit(self, name: str, url: str | None) -> list[int]:
        from automl_core.experiment import submit_batch, submit_rung

        if self.batch is not None:
            return submit_batch(name, self.batch, db_url=url)
        assert self.bracket is not None and self.rung is not None
        return submit_rung(name, self.bracket, self.rung, db_url=url)

    async def _watch(self, read: Any, engine_state: Any) -> AsyncIterator[TriggerEvent]:
        """Poll ``read()`` (request counts) until none is unfinished, the engine task has
        ended (``engine_state()``, every ENGINE_STATE_POLL_S), or the engine is lost."""
        from automl_core.store.repository import RequestState as State

        last: tuple[int, int] | None = None
        state: str | None = None
        state_read_at = float("-inf")
        # Since when the engine has been running (or of unknown state) as far as this
        # trigger saw: a lease left by an earlier engine is as old as it is.
        watched_since = time.monotonic()
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
            now = time.monotonic()
            if now - state_read_at >= ENGINE_STATE_POLL_S:
                previous, state, state_read_at = state, await engine_state(), now
                if state != previous:  # a new attempt may not have taken the lease yet
                    watched_since = now
                    if state is not None:
                        self.log.info("The engine task of this run is %s", state)
            if state in ENGINE_ENDED:
                # Read again: an engine that ended after this rung's last epoch has done it.
                counts = await read()
                if counts[State.QUEUED] + counts[State.RUNNING] == 0:
                    continue
                yield TriggerEvent(
                    {
                        "status": "engine_ended",
                        "engine_state": state,
                        **request_summary(counts),
                        **_left(counts),
                    }
                )
                return
            lost = counts["engine_heartbeat_age_s"] > ENGINE_LOST_S
            if lost and state in (None, "running") and now - watched_since > ENGINE_LOST_S:
                yield TriggerEvent({"status": "engine_lost", **request_summary(counts)})
                return
            await asyncio.sleep(self.poll_s)


def _left(counts: Mapping[str, int]) -> dict[str, int]:
    from automl_core.store.repository import RequestState as State

    return {State.QUEUED.value: counts[State.QUEUED], State.RUNNING.value: counts[State.RUNNING]}


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
