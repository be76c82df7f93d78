"""The same seed repeats the same search on real Dask workers, whatever their timing.

A Hyperband search on digits runs twice with one seed, the second time with one worker
slowed down (every job there sleeps first), and a third time with another seed. Each
model visits the partitions in its own seeded order, so the first two runs must agree on
every per-trial, per-epoch metric, every promotion and the best trial, bit for bit; the
third must differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from distributed import Client, LocalCluster

from automl_core.experiment import SearchRequest, run_search
from tests.integration.slow_worker import SlowJobs, slowed_jobs
from tests.search_outcome import SearchOutcome, check_seeded_order, search_outcome

SPACE: dict[str, Any] = {
    "architecture": "mlp",
    "hidden": [32, 64],
    "dropout": {"uniform": [0.0, 0.3]},  # the CPU RNG travels with the state
    "optimizer": "sgd",
    "lr": {"loguniform": [0.02, 0.1]},
    "momentum": 0.9,
    "batch_size": 32,
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local.scheduler_address


def search(url: str, name: str, seed: int, cluster: str) -> SearchOutcome:
    request = SearchRequest(
        dataset="digits", space=SPACE, method="hyperband", name=name, seed=seed, R=4, eta=2,
        cluster=cluster,
    )  # fmt: skip
    run_search(request, progress=False, db_url=url)
    return search_outcome(url, name)


@pytest.mark.timeout(300)
def test_same_seed_same_search_with_a_slow_worker_and_another_seed_differs(
    digits_url: str, cluster: str
) -> None:
    first = search(digits_url, "repeat-a", 0, cluster)
    with Client(cluster, set_as_default=False, timeout=30) as client:
        slow = sorted(client.scheduler_info()["workers"])[0]
        client.register_plugin(SlowJobs(slow, 0.05))
        try:
            again = search(digits_url, "repeat-b", 0, cluster)
            slowed = client.run(slowed_jobs, workers=[slow])[slow]
        finally:
            client.unregister_worker_plugin(SlowJobs.name)
    other = search(digits_url, "repeat-c", 1, cluster)

    assert len(first.metrics) > 20 and len(first.rungs) == 6
    assert slowed >= sum(1 for row in again.log if row[4] == slow) > 0  # it really was slow
    assert again.metrics == first.metrics
    assert again.rungs == first.rungs
    assert again.best_trial == first.best_trial
    assert other.metrics != first.metrics
    for outcome in (first, again, other):
        check_seeded_order(outcome, [0, 1])
