"""Code that runs inside a Dask worker process: one sub-epoch on the local partition.

Each worker process keeps the partitions it has read in a module-level cache, so a
partition is read from the database once per worker and then stays put; only the model
state moves between workers. torch is imported here and in ``automl_core.training`` only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from automl_core.mop.executor import Visit

if TYPE_CHECKING:  # torch is imported on the worker only, when a job runs
    from automl_core.training.config import TrainingConfig

# (db_url, dataset, partition, split) -> (x, y); per worker process.
_PARTITIONS: dict[tuple[str, str, int, str], tuple[np.ndarray, np.ndarray]] = {}
_LOCK = threading.Lock()
_WORKER_READY = False


@dataclass(frozen=True)
class DataRef:
    """Where a worker finds its data; small and picklable."""

    db_url: str
    dataset: str
    feature_shape: tuple[int, ...]
    num_classes: int
    # The partitions whose validation rows an epoch's last visit evaluates; empty when
    # evaluation is a pass of its own (see DaskExecutor's ``replicate_validation``).
    validation_partitions: tuple[int, ...] = ()


def _prepare_worker(partition: int) -> None:
    """Once per worker process, before its first job: one torch thread (the worker is
    one slot) and, on GPU hosts, a GPU per worker; the imports a first job would pay for
    (the trainer, the user's architecture modules, and ``torch._dynamo``, which the first
    optimiser built in a process imports: 1-2 s); then ``gc.freeze()``.

    Why the freeze: a worker holds a large heap of long-lived objects (torch, Dask and
    their modules), and training allocates many objects the garbage collector tracks,
    so its full collections kept walking that heap during jobs: freezing it (Python's
    ``gc.freeze``) made the long sub-epochs of the many-small-models benchmark about 20%
    faster (benchmarks/RESULTS.md). Only objects that exist now are frozen; whatever
    jobs allocate later is collected as usual.
    """
    global _WORKER_READY
    if _WORKER_READY:
        return
    import gc

    import torch

    from automl_core.training import engine  # noqa: F401  (imported here, not in a job)
    from automl_core.training.user_modules import import_architecture_modules

    import_architecture_modules()
    torch.set_num_threads(int(os.environ.get("AUTOML_TORCH_THREADS", "1")))
    if torch.cuda.is_available():
        # Several workers on one multi-GPU host spread over the GPUs by partition.
        torch.cuda.set_device(partition % torch.cuda.device_count())
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    gc.collect()
    gc.freeze()
    _WORKER_READY = True


def load_partition(data: DataRef, partition: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The partition's rows, read from the database on first use and cached."""
    key = (data.db_url, data.dataset, partition, split)
    with _LOCK:
        cached = _PARTITIONS.get(key)
        if cached is not None:
            return cached
        import psycopg2

        from automl_core.data.reader import read_partition

        conn = psycopg2.connect(data.db_url)
        try:
            arrays = read_partition(conn, data.dataset, partition, split=split)
        finally:
            conn.close()
        _PARTITIONS[key] = arrays
        return arrays


def warm_up(data: DataRef, partition: int) -> str:
    """Make this worker ready to take ``partition``: set up (``_prepare_worker``), the
    partition's rows and every validation partition it evaluates cached.

    Run on every worker when the executor starts, while the driver still prepares the
    first jobs, and on a fresh (e.g. restarted) worker before a partition moves to it,
    so the jobs that follow do not pay the start-up; returns the worker's address.
    """
    from distributed import get_worker

    _prepare_worker(partition)
    for split in ("train", "valid"):
        load_partition(data, partition, split)
    for other in data.validation_partitions:
        load_partition(data, other, "valid")
    return str(get_worker().address)


def cached_partitions() -> list[tuple[str, int, str]]:
    """(dataset, partition, split) of every partition this worker holds."""
    return [(k[1], k[2], k[3]) for k in _PARTITIONS]


JobOutput = tuple[bytes, list[Visit]]


def run_job(
    kind: str,
    model_id: int,
    partition: int,
    epoch: int,
    config: TrainingConfig | Mapping[str, Any],
    state: bytes | JobOutput | None,
    data: DataRef,
    seed: int,
    evaluate_after: bool = False,
) -> JobOutput:
    """Run one sub-epoch; returns the model's state after it and the visits of its epoch.

    ``state`` is the previous job's output (Dask resolves the future in place, moving it
    from the worker that made it), raw checkpoint bytes, or None for a fresh model. The
    visits of the same epoch carried in it are kept and this job's visit is appended, so
    the driver reads an epoch's job log and metrics once, with the state, at its end.
    An evaluation returns the state it read unchanged. ``evaluate_after`` (the epoch's
    last training visit, with validation replicated on every worker) also evaluates the
    new state on every validation partition: ``valid_loss_sum``, ``valid_correct`` and
    ``valid_samples`` join the visit's metrics. A dict ``config`` is validated once
    here, and the job reads the typed ``TrainingConfig`` from then on.
    """
    from distributed import get_worker

    from automl_core.training import engine
    from automl_core.training.config import training_config

    _prepare_worker(partition)
    config = training_config(config)
    visits: list[Visit] = []
    if isinstance(state, tuple):
        state, carried = state
        visits = [v for v in carried if v.epoch == epoch]
    started = time.time()
    if kind == "train":
        x, y = load_partition(data, partition, "train")
        validation = (
            [load_partition(data, p, "valid") for p in data.validation_partitions]
            if evaluate_after
            else []
        )
        new_state, metrics = engine.train_partition(
            config,
            state,
            x,
            y,
            input_shape=data.feature_shape,
            num_classes=data.num_classes,
            epoch=epoch,
            seed=seed,
            evaluate_on=validation,
        )
    else:
        if state is None:
            raise ValueError(f"model {model_id}: evaluation needs a trained state")
        x, y = load_partition(data, partition, "valid")
        metrics = engine.evaluate_partition(
            config, state, x, y, input_shape=data.feature_shape, num_classes=data.num_classes
        )
        new_state = state
    visits.append(
        Visit(
            partition,
            epoch,
            kind,
            str(get_worker().address),
            started,
            time.time(),
            {k: float(v) for k, v in metrics.items()},
        )
    )
    return bytes(new_state), visits


def job_output(result: JobOutput | bytes) -> JobOutput:
    """A job's output as (state bytes, visits); checkpoint bytes come with no visits."""
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result), []
    return result
