"""The local cluster's workers: forked from the preloaded server, with the start
environment local_cluster gives them (not Dask's malloc setting)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from automl_core.executors.local_cluster import local_cluster

HASHED = "automl"


def _probe() -> dict[str, Any]:
    import gc
    import logging

    from automl_core.executors.worker_logging import WORKER_LOGGER, HeartbeatAtCloseFilter

    return {
        "preloaded": "automl_core.executors.worker_preload" in sys.modules,
        "torch": "torch._dynamo" in sys.modules,
        "frozen": gc.get_freeze_count() > 0,
        "parent": os.getppid(),
        "env": {
            k: os.environ.get(k)
            for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "PYTHONSAFEPATH")
        },
        # What the interpreter took at its start (the server's), not a variable set since.
        "safe_path": sys.flags.safe_path,
        "hash": hash(HASHED),
        "quiet_close": any(
            isinstance(f, HeartbeatAtCloseFilter) for f in logging.getLogger(WORKER_LOGGER).filters
        ),
    }


def _fixed_seed_hash() -> int:
    """hash(HASHED) in an interpreter started with Dask's fixed PYTHONHASHSEED."""
    done = subprocess.run(
        [sys.executable, "-c", f"print(hash({HASHED!r}))"],
        env={**os.environ, "PYTHONHASHSEED": "6640"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.timeout(120)
def test_workers_are_forked_from_the_preloaded_server() -> None:
    from distributed import Client

    with local_cluster(2) as cluster, Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        seen = list(client.run(_probe).values())
    assert len(seen) == 2
    for worker in seen:
        # Imported before any job ran: the server's preload, not a first job.
        assert worker["preloaded"] and worker["torch"] and worker["frozen"], worker
        assert worker["parent"] != os.getpid(), "a worker was not forked from the server"
        assert worker["env"] == {
            "MALLOC_TRIM_THRESHOLD_": None,
            "OMP_NUM_THREADS": "1",
            "PYTHONSAFEPATH": None,  # the server's own, not handed on
        }
        assert worker["safe_path"], "the current directory is on the workers' path"
        assert worker["hash"] == _fixed_seed_hash(), "workers hash strings with a random seed"
        assert worker["quiet_close"], "a worker would log a traceback when closed mid-heartbeat"
    assert seen[0]["parent"] == seen[1]["parent"]
