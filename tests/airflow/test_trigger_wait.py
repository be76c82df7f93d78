"""How a waiting training task's trigger decides: done, engine ended, engine lost, or wait.

Pure: ``RequestsDoneTrigger._watch`` is driven with scripted request counts and engine
task states, and the clock only moves by the trigger's own sleeps (0.01 s a poll here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.triggers.base import TaskSuccessEvent
from automl_airflow import triggers
from automl_airflow.triggers import RequestsDoneTrigger

DEADLINE_S = 10.0


def counts(queued: int, done: int, *, heartbeat_age_s: int = 1) -> dict[str, int]:
    return {
        "queued": queued,
        "running": 0,
        "done": done,
        "failed": 0,
        "engine_starts": 1,
        "engine_heartbeat_age_s": heartbeat_age_s,
    }


def watch(reads: Iterator[dict[str, int]], states: Iterator[str | None]) -> Any:
    """The first event of a trigger polling ``reads`` (the last repeats), or None when
    it is still waiting after 100 polls."""
    trigger = RequestsDoneTrigger(automl_conn_id="unused", experiment="e", bracket=0, rung=0)
    trigger.poll_s = 0.01
    last: dict[str, Any] = {}

    async def read() -> dict[str, int]:
        last["counts"] = next(reads, last.get("counts"))
        return last["counts"]

    async def state() -> str | None:
        last["state"] = next(states, last.get("state"))
        return last["state"]

    async def first() -> Any:
        async for event in trigger._watch(read, state):
            return event
        return None

    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(first(), timeout=100 * trigger.poll_s + 1)
        except TimeoutError:
            return None

    return asyncio.run(asyncio.wait_for(bounded(), DEADLINE_S))


@pytest.fixture(autouse=True)
def _fast_state_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triggers, "ENGINE_STATE_POLL_S", 0.0)


def test_the_task_succeeds_when_its_requests_are_done() -> None:
    event = watch(iter([counts(3, 0), counts(0, 3)]), iter(["running"]))
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms == {"return_value": {"done": 3, "failed": 0}}


@pytest.mark.parametrize("state", ["failed", "upstream_failed", "skipped", "success"])
def test_an_engine_task_that_ended_with_requests_left_fails_the_wait(state: str) -> None:
    event = watch(iter([counts(3, 0)]), iter(["running", state]))
    assert event.payload == {
        "status": "engine_ended",
        "engine_state": state,
        "done": 0,
        "failed": 0,
        "queued": 3,
        "running": 0,
    }


def test_an_engine_that_ended_after_the_last_epoch_is_read_again_and_succeeds() -> None:
    # The state read comes after a count that was current before the engine's last write.
    event = watch(iter([counts(1, 2), counts(0, 3)]), iter(["success"]))
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms == {"return_value": {"done": 3, "failed": 0}}


@pytest.mark.parametrize("state", ["queued", "scheduled", "up_for_retry"])
def test_an_engine_still_to_come_is_waited_for_beside_an_old_lease(
    monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    # A lease left a day ago by an earlier engine, killed: its task will run again.
    monkeypatch.setattr(triggers, "ENGINE_LOST_S", 0.05)
    event = watch(iter([counts(3, 0, heartbeat_age_s=86_400)]), iter([state]))
    assert event is None


@pytest.mark.parametrize("state", ["running", None])
def test_an_engine_that_runs_without_its_heartbeat_is_lost(
    monkeypatch: pytest.MonkeyPatch, state: str | None
) -> None:
    # None: the engine task's state could not be read; the heartbeat alone decides.
    monkeypatch.setattr(triggers, "ENGINE_LOST_S", 0.05)
    event = watch(iter([counts(3, 0, heartbeat_age_s=3600)]), iter([state]))
    assert event.payload["status"] == "engine_lost"


def test_a_running_engine_with_a_fresh_heartbeat_is_waited_for() -> None:
    event = watch(iter([counts(3, 0, heartbeat_age_s=2)]), iter(["running"]))
    assert event is None
