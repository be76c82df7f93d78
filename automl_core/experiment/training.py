"""Where the engine trains: the Dask executor over a data set's partitions, and the progress bar."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

from automl_core.data.reader import DatasetInfo
from automl_core.executors.dask_worker import DataRef

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

    address = cluster or os.environ.get("AUTOML_DASK_ADDRESS") or None
    data = DataRef(db_url, info.name, tuple(info.feature_shape), info.num_classes)
    valid_bytes = info.n_valid * math.prod(info.feature_shape) * 4  # float32 features
    executor = DaskExecutor(
        data,
        list(range(info.partitions)),
        seed=seed,
        address=address,
        n_workers=workers,
        replicate_validation=valid_bytes <= REPLICATE_VALIDATION_MAX_BYTES,
    )
    try:
        yield executor
    finally:
        executor.close()


def progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="job", desc="sub-epochs", dynamic_ncols=True)
