"""Where the engine trains: how many local workers it starts."""

from __future__ import annotations

import pytest


def test_local_workers_are_capped_at_one_per_partition(caplog: pytest.LogCaptureFixture) -> None:
    from automl_core.experiment.worker_pool import local_workers

    assert local_workers(None, 4) == 4
    assert local_workers(2, 4) == 2
    assert not caplog.records
    assert local_workers(64, 2) == 2
    assert "--workers 64 is more than the data set's 2 partitions" in caplog.text
