"""Hop overhead: moving a ~10 MB model state between Dask workers vs one sub-epoch.

    .venv/bin/python benchmarks/bench_hop.py [--rows 2000] [--repeats 7]

Two single-threaded workers (a local cluster, as `automl run` starts). Worker A trains
one sub-epoch of an MLP of about 10 MB (3072 -> 1024 -> 10, plain SGD, so the state is
the weights) on its partition; then a no-op task on worker B receives that state, which
makes Dask copy it from A to B. The hop's cost is that task's time minus the same no-op
with a tiny argument. Printed: medians, and the hop as a share of the sub-epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIG = {
    "architecture": "mlp",
    "hidden": 1024,
    "depth": 1,
    "optimizer": "sgd",
    "lr": 0.01,
    "batch_size": 64,
}
FEATURES = 3072


def _sub_epoch(state, rows: int, epoch: int):  # type: ignore[no-untyped-def]
    """One pass over a worker-local partition; returns (state bytes, seconds)."""
    import torch

    from automl_core.training import engine

    torch.set_num_threads(1)
    rng = np.random.default_rng(epoch)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = rng.integers(0, 10, size=rows)
    if isinstance(state, tuple):
        state = state[0]
    start = time.perf_counter()
    new, _ = engine.train_partition(
        CONFIG, state, x, y, input_shape=(FEATURES,), num_classes=10, epoch=epoch, seed=0
    )
    return new, time.perf_counter() - start


def _noop(value) -> int:  # type: ignore[no-untyped-def]
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        memory_limit=0,
        env={"OMP_NUM_THREADS": "1"},
    )
    client = Client(cluster, set_as_default=False)
    try:
        a, b = sorted(client.scheduler_info()["workers"])
        state = client.submit(_sub_epoch, None, 64, 1, workers=[a], pure=False)
        state.result()  # warm-up: torch import, first optimizer
        client.submit(_noop, 0, workers=[b], pure=False).result()
        subepoch, hop, bare, size = [], [], [], 0
        for epoch in range(2, 2 + args.repeats):
            state = client.submit(_sub_epoch, state, args.rows, epoch, workers=[a], pure=False)
            new_bytes, seconds = state.result()
            size = len(new_bytes)
            subepoch.append(seconds)
            t = time.perf_counter()
            client.submit(_noop, 0, workers=[b], pure=False).result()
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.submit(_noop, state, workers=[b], pure=False).result()
            hop.append(time.perf_counter() - t)  # a new state key each time: always a copy
    finally:
        client.close()
        cluster.close()

    med = statistics.median
    transfer = max(med(hop) - med(bare), 0.0)
    import torch

    device = f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {device}",
        "state_mb": round(size / 1e6, 2),
        "rows_per_partition": args.rows,
        "sub_epoch_s": round(med(subepoch), 4),
        "hop_transfer_s": round(transfer, 4),
        "noop_task_s": round(med(bare), 4),
        "hop_share_of_sub_epoch": round(transfer / med(subepoch), 4),
    }
    print(json.dumps(figures, indent=2))
    print(
        f"| {figures['machine']} | {figures['state_mb']} MB | {figures['sub_epoch_s']} s "
        f"| {figures['hop_transfer_s']} s | {figures['hop_share_of_sub_epoch']:.1%} |"
    )


if __name__ == "__main__":
    main()
