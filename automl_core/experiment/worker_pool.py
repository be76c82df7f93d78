"""Where the engine trains: the Dask executor over a data set's partitions, and the
progress bar."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

from automl_core.data.reader import DatasetInfo
from automl_core.errors import UserInputError
from automl_core.executors.dask_worker import DataRef
from automl_core.experiment.stopping import new_processes_ignore_sigint

log = logging.getLogger(__name__)

# Validation sets up to this size are held by every worker, so an epoch's last training
# visit evaluates the model there: one job per visit instead of a second pass of jobs.
# Larger ones stay partitioned and are evaluated by a pass of their own.
REPLICATE_VALIDATION_MAX_BYTES = 64 * 2**20


@contextlib.contextmanager
def open_executor(
    db_url: str,
    info: DatasetInfo,
    *,
    seed: int,
    workers: int | None = None,
    cluster: str | None = None,
) -> Iterator[Any]:
    """A Dask executor over the data set's partitions: an existing cluster or a local one."""
    from automl_core.executors.dask_executor import DaskExecutor

    address = cluster_address(cluster)
    data = DataRef(db_url, info.name, tuple(info.feature_shape), info.num_classes)
    workers = local_workers(workers, info.partitions) if not address else workers
    valid_bytes = info.n_valid * math.prod(info.feature_shape) * 4  # float32 features
    try:
        executor = DaskExecutor(
            data,
            list(range(info.partitions)),
            seed=seed,
            address=address,
            n_workers=workers,
            replicate_validation=valid_bytes <= REPLICATE_VALIDATION_MAX_BYTES,
        )
    except OSError as exc:  # Dask's connect and wait_for_workers timeouts among them
        if not address:
            raise
        raise _unusable(address, exc) from None
    try:
        yield executor
    finally:
        executor.close()


def check_cluster(cluster: str | None) -> None:
    """Where the run will train on an existing cluster, check now, before anything is
    written, that a Dask scheduler answers at its address (UserInputError if not)."""
    from automl_core.executors.scheduler_probe import check_scheduler

    address = cluster_address(cluster)
    if address:
        try:
            check_scheduler(address)
        except OSError as exc:
            raise _unusable(address, exc) from None


def _unusable(address: str, exc: OSError) -> UserInputError:
    from automl_core.executors.scheduler_probe import WHERE

    return UserInputError(
        f"The Dask cluster at {address} could not be used ({exc}): check the address "
        f"({WHERE}) and that its scheduler and workers run."
    )


def cluster_address(cluster: str | None) -> str | None:
    """The Dask scheduler to train on: ``cluster``, else ``AUTOML_DASK_ADDRESS``; None
    means a local cluster of the run's own."""
    return cluster or os.environ.get("AUTOML_DASK_ADDRESS") or None


def start_local_workers_early(cluster: str | None) -> None:
    """Where the run will start a local cluster, start the process its workers are
    forked from now, so that it imports torch while the caller does other work
    (``executors.local_cluster.start_worker_server``); else nothing."""
    if cluster_address(cluster) is None:
        from automl_core.executors.local_cluster import start_worker_server

        # The workers forked from it keep its SIGINT disposition: ignored, as for
        # workers started by the engine (a Ctrl-C reaches the whole process group).
        with new_processes_ignore_sigint():
            start_worker_server()


def local_workers(requested: int | None, partitions: int) -> int:
    """How many local workers to start: one per partition at most.

    A worker holds one partition and trains one model at a time, so a worker beyond the
    partitions would only idle (and take memory and a core's share). More than that is
    capped with a warning that says so.
    """
    if requested is None or requested >= partitions:
        if requested is not None and requested > partitions:
            log.warning(
                "--workers %d is more than the data set's %d partitions: starting %d "
                "workers (one per partition; prepare the data with more partitions to use "
                "more workers)",
                requested,
                partitions,
                partitions,
            )
        return partitions
    return requested


def progress_bar(enabled: bool, planned_epochs: int = 0) -> JobProgress | None:
    """The CLI's bar over sub-epoch jobs; None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm import tqdm

    return JobProgress(
        tqdm(total=0, unit="job", desc="sub-epochs", dynamic_ncols=True), planned_epochs
    )


class JobProgress:
    """A tqdm bar over sub-epoch jobs, sized up front to the epochs the search's plan
    still has to train (``SearchPlan.planned_epochs`` less those trained), so that it does
    not shrink as rungs promote; work beyond the plan grows it. A context manager, as
    the bar is."""

    def __init__(self, bar: Any, planned_epochs: int) -> None:
        self._bar = bar
        self._planned_epochs = planned_epochs
        self._added = 0

    def added(self, epochs: int, jobs_per_epoch: int) -> None:
        """``epochs`` more epochs of some model, ``jobs_per_epoch`` jobs each, will train."""
        self._added += epochs * jobs_per_epoch
        self._bar.total = max(self._planned_epochs * jobs_per_epoch, self._added)
        self._bar.refresh()

    def job_done(self) -> None:
        self._bar.update(1)

    def __enter__(self) -> JobProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)
