"""The trigger a training task waits on: the engine finished its rung's (or batch's) requests.

It runs in Airflow's triggerer, so a waiting training task holds no worker slot. It polls
``automl.training_requests`` over one connection (through automl_core, in a thread:
psycopg2 blocks) and ends
the task from the triggerer when no request is queued or running, without resuming it on a
worker. The database URL comes from the Airflow connection, resolved in the triggerer, so
no credential is ever stored in the trigger's serialized arguments.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

# The engine promotes on its own; this only says when the Airflow task is done.
POLL_S = 1.0
# An engine that has not written its heartbeat for this long is taken for lost: the task
# resumes on a worker, fails, and its retries (or a person) take over.
ENGINE_LOST_S = 600.0


class RequestsDoneTrigger(BaseTrigger):
    """Fires when every training request of one rung or batch is done (or failed).

    :param experiment: the experiment's name.
    :param bracket: with ``rung``, the Hyperband rung to watch.
    :param rung: the rung of ``bracket``.
    :param batch: the batch to watch (grid, random, hyperopt).
    :param automl_conn_id: the Airflow connection of the results database.
    """

    def __init__(
        self,
        *,
        experiment: str,
        automl_conn_id: str,
        bracket: int | None = None,
        rung: int | None = None,
        batch: int | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__()
        self.experiment = experiment
        self.automl_conn_id = automl_conn_id
        self.bracket = bracket
        self.rung = rung
        self.batch = batch
        self.poll_s = poll_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "experiment": self.experiment,
                "automl_conn_id": self.automl_conn_id,
                "bracket": self.bracket,
                "rung": self.rung,
                "batch": self.batch,
                "poll_s": self.poll_s,
            },
        )

    @property
    def what(self) -> str:
        if self.batch is not None:
            return f"batch {self.batch}"
        return f"bracket {self.bracket} rung {self.rung}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        from automl_airflow.hooks import GreenplumHook
        from automl_core.experiment.api import ProgressReader

        url = await sync_to_async(
            GreenplumHook(automl_conn_id=self.automl_conn_id).get_automl_url
        )()
        reader = await sync_to_async(ProgressReader)(
            self.experiment, bracket=self.bracket, rung=self.rung, batch=self.batch, db_url=url
        )
        try:
            async for event in self._watch(sync_to_async(reader.counts)):
                yield event
                return
        finally:
            await sync_to_async(reader.close)()

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
                yield TaskSuccessEvent(xcoms={"return_value": _summary(counts)})
                return
            if counts["engine_heartbeat_age_s"] > ENGINE_LOST_S:
                yield TriggerEvent({"status": "engine_lost", **_summary(counts)})
                return
            await asyncio.sleep(self.poll_s)


def _summary(counts: dict[str, int]) -> dict[str, Any]:
    from automl_core.store.repository import RequestState as State

    return {State.DONE.value: counts[State.DONE], State.FAILED.value: counts[State.FAILED]}
