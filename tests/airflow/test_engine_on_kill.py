"""The engine task told to stop (``on_kill``) stops its engine cleanly, and resumes.

Airflow calls ``on_kill`` from its SIGTERM handler in the task's process while
``execute`` runs; here ``execute`` runs in a thread and ``on_kill`` is called beside it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from automl_core.experiment.stopping import EngineInterrupted
from tests.integration.fault_runs import (
    create_suite_experiment,
    epochs_recorded,
    state_counts,
    wait_for,
)

pytestmark = pytest.mark.fault


@pytest.mark.timeout(300)
def test_on_kill_interrupts_the_engine_and_a_retry_resumes_it(
    digits_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl_airflow.operators import TrainingEngineOperator

    monkeypatch.setenv("AUTOML_DB_URL", digits_url)
    name = "airflow-on-kill"
    create_suite_experiment(digits_url, name, tmp_path)
    task = TrainingEngineOperator(task_id="engine", experiment=name)
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            outcome["result"] = task.execute({})  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - the thread hands it to the test
            outcome["error"] = exc

    thread = threading.Thread(target=execute, daemon=True)
    thread.start()
    wait_for("5 epochs", lambda: epochs_recorded(digits_url, name) >= 5, 120)
    task.on_kill()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the engine did not stop within 60 s of on_kill"
    error = outcome.get("error")
    assert isinstance(error, EngineInterrupted), outcome
    assert error.epochs == epochs_recorded(digits_url, name)
    state = state_counts(digits_url, name)
    assert state["status"] == "interrupted" and state["engine_stopped"] is True
    assert "running" not in state["requests"] and "running" not in state["trials"]

    # The task's retry: the same operator trains the rest.
    result = TrainingEngineOperator(task_id="engine", experiment=name).execute({})  # type: ignore[arg-type]
    assert result["engine_starts"] == 2
    assert set(state_counts(digits_url, name)["requests"]) == {"done"}
