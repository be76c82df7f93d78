"""Hyperopt's random start-up is sized to the budget, so the shipped defaults reach TPE.

hyperopt samples its first 20 trials at random; the default search (3 batches of 4) has
12, so before this it was random search. The start-up is now a third of the budget (2 to
20) unless the request sets ``startup_trials``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hyperopt import tpe

from automl_core.errors import UserInputError
from automl_core.experiment.plan import group_trials, search_plan
from automl_core.experiment.request import SearchRequest
from automl_core.search.hyperopt_search import startup_trials

SPACE = {"lr": {"loguniform": [1e-4, 1.0]}, "batch_size": [16, 32, 64, 128]}


def hyperopt_batch(
    request: SearchRequest, batch: int, history: list[tuple[dict[str, Any], float]]
) -> list[tuple[int, dict[str, Any]]]:
    """The trials of ``batch``, proposed from ``history``."""
    group = search_plan(request).group("batch", batch)
    return group_trials(request, group, lambda first: history)


def _accuracy(config: dict[str, Any]) -> float:
    """Best at lr = 1e-2, whatever the batch size."""
    return float(1.0 - abs(np.log10(config["lr"]) + 2.0) / 4.0)


def test_the_default_search_proposes_its_later_batches_with_tpe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = tpe.suggest

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tpe, "suggest", spy)
    request = SearchRequest(dataset="d", space=SPACE, method="hyperopt")  # 3 batches of 4
    request.validate()
    assert (request.batches, request.batch_size, request.startup_trials) == (3, 4, None)
    history = [(c, _accuracy(c)) for _, c in hyperopt_batch(request, 0, [])]
    assert not calls  # the first batch is the random start-up
    hyperopt_batch(request, 1, history)
    assert len(calls) >= request.batch_size  # batch 1 comes from TPE


@pytest.mark.parametrize(("total", "expected"), [(1, 2), (8, 2), (12, 4), (30, 10), (600, 20)])
def test_the_default_start_up_is_a_third_of_the_budget_from_2_to_20(
    total: int, expected: int
) -> None:
    assert startup_trials(None, total) == expected


def test_a_user_sets_the_start_up_and_it_is_stored_with_the_experiment() -> None:
    request = SearchRequest(dataset="d", space=SPACE, method="hyperopt", startup_trials=8)
    request.validate()
    spec = request.spec()
    assert spec["budget"]["startup_trials"] == 8
    assert SearchRequest.from_spec("d", 0, spec).startup_trials == 8
    # Left unset, the stored spec is what it was before the knob existed.
    assert (
        "startup_trials"
        not in SearchRequest(dataset="d", space=SPACE, method="hyperopt").spec()["budget"]
    )


@pytest.mark.parametrize("value", [0, -1, 13, 2.5, True, "4"])
def test_a_start_up_outside_1_to_the_budget_is_refused(value: Any) -> None:
    request = SearchRequest(dataset="d", space=SPACE, method="hyperopt", startup_trials=value)
    with pytest.raises(UserInputError, match="startup_trials .* from 1 to 12"):
        request.validate()
