"""The local Dask cluster of a run: one single-threaded worker process per partition,
forked from a server process that has imported torch and the trainer once.

Why a fork server: each worker used to be a fresh interpreter (multiprocessing's
"spawn") that imported torch, ``torch._dynamo``, Dask and the trainer itself, about
2.5 s of CPU per worker, all at once on the machine's cores, and before the first job.
Now one server process (multiprocessing's "forkserver", preloading
:mod:`automl_core.executors.worker_preload`) imports them once, and the workers, and a
worker restarted after it died, are forked from it in a fraction of a second.
:func:`start_worker_server` starts it early, so that it imports beside the driver's
own start-up (``automl run`` calls it before it creates the experiment).

Where the platform has no fork server (Windows), workers are spawned as before.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Iterator
from typing import Any

PRELOAD = ["automl_core.executors.worker_preload"]

# The environment a worker process starts with (read when a library loads, so in the
# fork server): one OpenMP/MKL/OpenBLAS thread, since each worker is one slot. In place
# of Dask's ``distributed.nanny.pre-spawn-environ``, which also sets
# MALLOC_TRIM_THRESHOLD_=65536 so that glibc hands freed memory back to the OS at once;
# torch frees and allocates its activations every mini-batch, and with that setting each
# allocation page-faulted afresh: the same sub-epochs took 1.3-1.6x as long
# (benchmarks/RESULTS.md). Workers keep glibc's own, adaptive thresholds.
WORKER_START_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"
CLOSE_TIMEOUT_S = 30.0


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def start_worker_server() -> None:
    """Start the fork server that local workers come from, if it is not running yet.

    Returns at once: the server imports torch and the trainer in the background. It
    starts with ``WORKER_START_ENV`` in its environment, because those settings are read
    when a library is loaded, that is, in the server. It lives until this process exits.
    """
    if _start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    # The server runs `python -c`, which would put the current directory first on its
    # path: a stray torch.py there would be imported in every worker. PYTHONSAFEPATH
    # (Python 3.11) leaves it off.
    # PYTHONHASHSEED: one string hash order in every worker, as Dask's nanny gives the
    # workers it spawns (set after a fork it would come too late).
    start_env = {**WORKER_START_ENV, "PYTHONSAFEPATH": "1", "PYTHONHASHSEED": "6640"}
    saved = {k: os.environ.get(k) for k in (*start_env, MALLOC_TRIM)}
    os.environ.pop(MALLOC_TRIM, None)  # put there by a nanny of an earlier cluster, say
    os.environ.update(start_env)
    try:
        forkserver.ensure_running()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def local_cluster(n_workers: int) -> Iterator[Any]:
    """A LocalCluster of ``n_workers`` single-threaded worker processes on 127.0.0.1.

    Its settings hold while the block runs, so that a worker the nanny restarts after
    a loss is forked the same way.
    """
    import dask
    from distributed import LocalCluster

    settings = {
        # A worker's statistical profiler samples the training thread's stack every
        # 10 ms, taking the GIL from it; these workers run one job at a time, so it
        # tells nothing new.
        "distributed.worker.profile.enabled": False,
        # Every job is pinned to its partition's worker: nothing can be stolen, and
        # the stealing extension would still track every task on the scheduler.
        "distributed.scheduler.work-stealing": False,
        "distributed.worker.multiprocessing-method": _start_method(),
        # Where workers are spawned (no fork server): the same start environment.
        "distributed.nanny.pre-spawn-environ": WORKER_START_ENV,
    }
    start_worker_server()
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # a free port: never clash with another cluster
            memory_limit=0,
            silence_logs=logging.WARNING,
            # A forked worker starts from the server's environment: hand it this
            # process's as it is now (AUTOML_* settings a test or task set since).
            env={**{k: v for k, v in os.environ.items() if k != MALLOC_TRIM}, **WORKER_START_ENV},
        )
        try:
            yield cluster
        finally:
            cluster.close(timeout=CLOSE_TIMEOUT_S)
