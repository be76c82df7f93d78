"""Where the engine trains: how many local workers it starts, and the progress bar."""

from __future__ import annotations

import pytest


def test_local_workers_are_capped_at_one_per_partition(caplog: pytest.LogCaptureFixture) -> None:
    from automl_core.experiment.worker_pool import local_workers

    assert local_workers(None, 4) == 4
    assert local_workers(2, 4) == 2
    assert not caplog.records
    assert local_workers(64, 2) == 2
    assert "--workers 64 is more than the data set's 2 partitions" in caplog.text


def test_the_progress_bar_is_sized_to_the_plan_and_never_shrinks() -> None:
    # It grew as rungs promoted: 9 of 18 jobs (50%), then 9 of 22 (41%).
    from automl_core.experiment.worker_pool import JobProgress

    class Bar:
        total, n = 0, 0

        def refresh(self) -> None: ...

        def update(self, k: int) -> None:
            self.n += k

    bar = Bar()
    progress = JobProgress(bar, planned_epochs=11)  # e.g. 9 x 1 epoch, then 1 x 2 more
    progress.added(9, jobs_per_epoch=2)
    assert bar.total == 22
    shares = []
    for _ in range(18):
        progress.job_done()
        shares.append(bar.n / bar.total)
    progress.added(2, jobs_per_epoch=2)  # the promoted trial
    assert bar.total == 22
    for _ in range(4):
        progress.job_done()
        shares.append(bar.n / bar.total)
    assert shares == sorted(shares) and shares[-1] == 1.0
    progress.added(3, jobs_per_epoch=2)  # work beyond the plan grows the bar
    assert bar.total == 28
