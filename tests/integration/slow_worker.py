"""A Dask worker plugin that slows every job on one worker (tests of repeatability).

Jobs reach a worker as a reference to ``dask_worker.run_job``, resolved by name when the
task is unpickled there, so replacing that module attribute in one worker process slows
exactly that worker's jobs.
"""

from __future__ import annotations

import time
from typing import Any

from distributed import WorkerPlugin


class SlowJobs(WorkerPlugin):
    """Every job on the worker at ``address`` sleeps ``seconds`` first."""

    name = "slow-jobs"

    def __init__(self, address: str, seconds: float) -> None:
        self.address = address
        self.seconds = seconds
        self._original: Any = None

    def setup(self, worker: Any) -> None:
        if worker.address != self.address:
            return
        from automl_core.executors import dask_worker

        self._original = original = dask_worker.run_job
        seconds = self.seconds
        worker.slowed_jobs = 0  # read back with client.run(slowed_jobs, workers=[...])

        def slow_run_job(*args: Any, **kwargs: Any) -> Any:
            time.sleep(seconds)
            worker.slowed_jobs += 1
            return original(*args, **kwargs)

        dask_worker.run_job = slow_run_job

    def teardown(self, worker: Any) -> None:
        if self._original is not None:
            from automl_core.executors import dask_worker

            dask_worker.run_job = self._original


def slowed_jobs(dask_worker: Any) -> int:
    """How many jobs ``SlowJobs`` slowed on this worker (run it with ``client.run``)."""
    return int(getattr(dask_worker, "slowed_jobs", 0))
