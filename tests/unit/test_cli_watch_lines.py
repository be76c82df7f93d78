"""``automl watch`` lines name a rung by the 0-based number that the logs, the
leaderboard, the report and the DAG's ``train_rung_<i>`` tasks use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from automl_core.experiment import progress
from automl_core.experiment.progress import group_lines, rung_label
from automl_core.experiment.request import SearchRequest
from automl_core.store import repository as repo

SPACE = {"architecture": "mlp", "hidden": [16, 32], "lr": [0.1, 0.01], "batch_size": 32}


def experiment() -> repo.Experiment:
    request = SearchRequest(dataset="d", space=SPACE, method="hyperband", R=9, eta=3)
    return repo.Experiment(
        id=1,
        name="e",
        method="hyperband",
        dataset="d",
        spec=request.spec(),
        seed=0,
        status=repo.ExperimentState.RUNNING,
        airflow_run_id=None,
        created_at=datetime.now(UTC),
        finished_at=None,
    )


def requests(bracket: int, rung: int, n: int, target: int, done: int) -> list[Any]:
    return [
        repo.TrainingRequest(
            trial_id=i,
            target_epoch=target,
            bracket=bracket,
            rung=rung,
            state=repo.RequestState.DONE if i < done else repo.RequestState.QUEUED,
        )
        for i in range(n)
    ]


def lines(monkeypatch: pytest.MonkeyPatch, rows: list[Any]) -> dict[str, str]:
    """``group_lines`` over ``rows``, every rung's promotion recorded."""
    monkeypatch.setattr(progress.repo, "get_requests", lambda conn, experiment_id: rows)
    promoted = repo.RungRow(0, 9, 0.9, True, None)
    monkeypatch.setattr(progress.repo, "get_rung", lambda *args: [promoted])
    return group_lines(None, experiment())


def test_rungs_are_numbered_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hyperband R=9, eta=3: bracket 2 has rungs 0-2 (9x1, 3x3, 1x9); bracket 0 one rung.
    first = lines(monkeypatch, requests(2, 0, 9, 1, done=2) + requests(0, 0, 3, 9, done=3))
    assert first["bracket_2"] == "rung 0 of 0-2 (9 x 1 epochs): 2 of 9 trained"
    assert first["bracket_0"] == "rung 0, the only one (3 x 9 epochs): 3 of 3 trained; complete"
    assert first["bracket_1"] == "waiting"
    later = lines(monkeypatch, requests(2, 0, 9, 1, done=9) + requests(2, 1, 3, 3, done=1))
    assert later["bracket_2"] == "rung 1 of 0-2 (3 x 3 epochs): 1 of 3 trained"
    last = lines(monkeypatch, requests(2, 2, 1, 9, done=1))
    assert last["bracket_2"] == "rung 2 of 0-2 (1 x 9 epochs): 1 of 1 trained; complete"


def test_rung_label() -> None:
    assert rung_label(0, 3) == "rung 0 of 0-2"
    assert rung_label(3, 4) == "rung 3 of 0-3"
    assert rung_label(0, 1) == "rung 0, the only one"
