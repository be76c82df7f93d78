"""The search plan: the groups, rungs and order the DAG factory and the engine share."""

from __future__ import annotations

import pytest

from automl_core.experiment.plan import search_plan
from automl_core.experiment.request import SearchRequest
from automl_core.search.hyperband import hyperband_schedule

GRID_SPACE = {"architecture": "mlp", "hidden": [32, 64, 128], "lr": [0.1, 0.01], "batch_size": 64}


@pytest.mark.parametrize(("R", "eta", "skip_last"), [(9, 3, 0), (27, 3, 0), (81, 3, 1), (16, 2, 0)])
def test_a_hyperband_plan_has_the_schedule_s_brackets_and_rungs(
    R: int, eta: int, skip_last: int
) -> None:
    request = SearchRequest(
        dataset="d", space=GRID_SPACE, method="hyperband", R=R, eta=eta, skip_last=skip_last
    )
    plan = search_plan(request)
    schedule = hyperband_schedule(R, eta, skip_last)
    assert [g.group_id for g in plan.groups] == [f"bracket_{b.s}" for b in schedule.brackets]
    for group, bracket in zip(plan.groups, schedule.brackets, strict=True):
        assert group.promotes and group.after is None
        assert [(r.rung, r.n, r.target_epoch) for r in group.rungs] == [
            (r.i, r.n_i, r.r_i) for r in bracket.rungs
        ]


def test_the_r27_plan_trains_49_configurations() -> None:
    plan = search_plan(SearchRequest(dataset="d", space=GRID_SPACE, method="hyperband", R=27))
    assert sum(g.rungs[0].n for g in plan.groups) == 49


@pytest.mark.parametrize(
    ("budget", "epochs"),
    [
        # Promoted trials go on from their rung: 9x1 + 3x2 + 1x6, 5x3 + 1x6, 3x9.
        ({"method": "hyperband", "R": 9}, 69),
        # The benchmark's search: 357 epochs (benchmarks/RESULTS.md).
        ({"method": "hyperband", "R": 27}, 357),
        ({"method": "hyperopt", "batches": 3, "batch_size": 4, "epochs": 2}, 24),
        ({"method": "random", "n": 7, "epochs": 3}, 21),
    ],
)
def test_the_plan_knows_how_many_epochs_it_trains(budget: dict, epochs: int) -> None:
    plan = search_plan(SearchRequest(dataset="d", space=GRID_SPACE, **budget))
    assert plan.planned_epochs == epochs


def test_hyperopt_batches_wait_for_the_one_before() -> None:
    request = SearchRequest(
        dataset="d", space=GRID_SPACE, method="hyperopt", batches=3, batch_size=4, epochs=2
    )
    plan = search_plan(request)
    assert [(g.group_id, g.after) for g in plan.groups] == [
        ("batch_0", None),
        ("batch_1", 0),
        ("batch_2", 1),
    ]
    assert all(g.rungs[0].n == 4 and g.rungs[0].target_epoch == 2 for g in plan.groups)
    assert not any(g.promotes for g in plan.groups)
    batch = plan.group
    assert [g.group_id for g in plan.followers(batch("batch", 0))] == ["batch_1"]
    assert [g.group_id for g in plan.followers(batch("batch", 1))] == ["batch_2"]
    assert plan.followers(batch("batch", 2)) == ()


@pytest.mark.parametrize(("method", "total"), [("grid", 6), ("random", 7)])
def test_grid_and_random_batches_are_independent_and_cover_every_trial(
    method: str, total: int
) -> None:
    request = SearchRequest(dataset="d", space=GRID_SPACE, method=method, n=7, batch_size=4)
    plan = search_plan(request)
    assert all(g.after is None for g in plan.groups)
    assert sum(g.rungs[0].n for g in plan.groups) == total
    assert plan.group("batch", 1).rungs[0].n == total - 4
    with pytest.raises(KeyError, match="batch 2"):
        plan.group("batch", 2)
    with pytest.raises(KeyError, match="bracket 0"):
        plan.group("bracket", 0)
    assert all(plan.followers(g) == () for g in plan.groups)


def test_rungs_to_go_counts_a_rung_and_those_after_it() -> None:
    plan = search_plan(SearchRequest(dataset="d", space=GRID_SPACE, method="hyperband", R=27))
    # R=27, eta=3: bracket s has s+1 rungs.
    assert [plan.rungs_to_go(s, 0) for s in (3, 2, 1, 0)] == [4, 3, 2, 1]
    assert plan.rungs_to_go(3, 3) == 1
    with pytest.raises(KeyError):
        plan.rungs_to_go(4, 0)
