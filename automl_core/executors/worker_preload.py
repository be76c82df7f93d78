"""Imported once by the server process that local Dask workers are forked from.

Every local worker needs torch, ``torch._dynamo`` (which the first optimiser built in a
process imports: 1-2 s), Dask and the trainer. Imported here, in the fork server
(:mod:`automl_core.executors.local_cluster`), they are paid once per run on one core
instead of once per worker on every core, and their pages stay shared between the
workers (copy-on-write; frozen so that no worker's garbage collector touches them).

Nothing here may start a thread or initialise CUDA: the workers are forked from this
process, and a forked child cannot use a CUDA context made before the fork. torch
initialises CUDA lazily, at the first use of a device; the worker picks its device
after the fork (``dask_worker._prepare_worker``).
"""

import gc
import os

import distributed  # noqa: F401
import torch  # noqa: F401
import torch._dynamo  # noqa: F401

from automl_core.executors import dask_worker, worker_logging  # noqa: F401
from automl_core.training import engine  # noqa: F401

# Set only for the server's own start (local_cluster): a worker's subprocesses must not
# inherit it (a `python script.py` would lose the script's folder from its path).
os.environ.pop("PYTHONSAFEPATH", None)

# No traceback from a worker that closes in the middle of a heartbeat (a run's end).
worker_logging.install()

gc.collect()
gc.freeze()
