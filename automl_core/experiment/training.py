"""The one training code path: `automl run` and the Airflow training tasks both call it."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from automl_core.data.reader import DatasetInfo
from automl_core.executors.dask_worker import DataRef
from automl_core.experiment.sink import DatabaseSink
from automl_core.mop.runner import DoneCallback, HopperRunner, RunSummary, TrainingTarget
from automl_core.store import repository as repo

log = logging.getLogger(__name__)

Item = tuple[int, dict[str, Any], int]  # (trial id, config, target epoch)


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

    address = cluster or os.environ.get("AUTOML_DASK_ADDRESS") or None
    data = DataRef(db_url, info.name, tuple(info.feature_shape), info.num_classes)
    executor = DaskExecutor(
        data, list(range(info.partitions)), seed=seed, address=address, n_workers=workers
    )
    try:
        yield executor
    finally:
        executor.close()


def resume_targets(
    conn: Any, experiment_id: int, items: Sequence[Item], info: DatasetInfo
) -> list[TrainingTarget]:
    """Targets that still need work, each starting from its checkpoint.

    A configuration the engine would reject (say, an architecture that cannot take the
    data's shape) marks its trial failed, with the reason, instead of stopping the search.
    """
    from automl_core.errors import UserInputError
    from automl_core.training.engine import validate_config
    from automl_core.training.plugins import import_architecture_modules

    import_architecture_modules()
    targets = []
    for trial_id, config, target_epoch in items:
        try:
            validate_config(config, info.feature_shape, info.num_classes)
        except UserInputError as exc:
            log.warning("trial %d failed: %s", trial_id, exc)
            repo.set_trial_status(conn, experiment_id, [trial_id], "failed", error=str(exc))
            continue
        checkpoint = repo.load_checkpoint(conn, experiment_id, trial_id)
        start = checkpoint.epoch if checkpoint else 0
        if start >= target_epoch:
            continue
        state = checkpoint.state if checkpoint else None
        targets.append(TrainingTarget(trial_id, config, start, target_epoch, state))
    return targets


def progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="job", desc="sub-epochs", dynamic_ncols=True)


def run_targets(
    conn: Any,
    experiment_id: int,
    executor: Any,
    targets: Sequence[TrainingTarget],
    *,
    seed: int,
    progress: bool = False,
    on_model_done: DoneCallback | None = None,
) -> RunSummary:
    """Train ``targets`` with the hopper on ``executor``; results go to the database."""
    bar = progress_bar(progress)
    runner = HopperRunner(executor, DatabaseSink(conn, experiment_id), seed=seed, progress=bar)
    if bar is None:
        return runner.run(targets, on_model_done)
    from tqdm.contrib.logging import logging_redirect_tqdm

    # Per-epoch log lines print above the bar instead of through it.
    with bar, logging_redirect_tqdm():
        return runner.run(targets, on_model_done)
