"""MOP efficiency: K models x P partitions x E epochs, against two baselines, in one run.

    .venv/bin/python benchmarks/bench_mop.py [--models 8] [--partitions 2] [--epochs 2]

Approaches, all on the same generated data, the same models and the same training code
(``automl_core.training.engine.train_partition``), each after a warm-up that starts its
workers, imports torch and loads its data, so the timed part is training only:

- MOP: the hopper (``HopperRunner`` + ``DaskExecutor``), one partition per worker, the
  model state hopping between workers. Utilisation comes from its job log.
- (a) sequential: the same models one after another on ONE worker holding all the data.
- (b) task parallelism: P workers that each hold ALL the data and train whole models.

Reports wall seconds, MOP utilisation = busy worker-seconds / (P x wall), the speedups
MOP vs (a) and MOP vs (b), and each approach's data held per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_databases import create_database, drop_database  # noqa: E402


def model_configs(k: int) -> list[dict]:
    """K MLPs of different sizes (widths 64..1024, depth 1-2): models differ in speed."""
    widths = [64, 128, 256, 512, 1024]
    return [
        {
            "architecture": "mlp",
            "hidden": widths[i % len(widths)],
            "depth": 1 + (i // len(widths)) % 2,
            "optimizer": "sgd",
            "momentum": 0.9,
            "lr": 0.02,
            "batch_size": 64,
        }
        for i in range(k)
    ]


def make_data(path: Path, rows: int, features: int, classes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.0, size=(classes, features)).astype(np.float32)
    y = rng.integers(0, classes, size=rows)
    x = centers[y] + rng.normal(0, 2.0, size=(rows, features)).astype(np.float32)
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))


# --- worker-side functions (defined in __main__, so Dask ships them by value) ---------------


def _full_data(db_url: str, dataset: str, partitions: int) -> tuple:
    from automl_core.executors.dask_worker import DataRef, load_partition

    ref = DataRef(db_url, dataset, (), 0)
    parts = [load_partition(ref, p, "train") for p in range(partitions)]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _warm(db_url: str, dataset: str, partitions: int, full: bool, partition: int) -> int:
    import torch

    from automl_core.executors.dask_worker import DataRef, load_partition
    from automl_core.training import engine

    torch.set_num_threads(1)
    if full:
        x, y = _full_data(db_url, dataset, partitions)
    else:
        x, y = load_partition(DataRef(db_url, dataset, (), 0), partition, "train")
    # One tiny step pays torch's lazy imports (dynamo) before the clock starts.
    engine.train_partition(
        model_configs(1)[0],
        None,
        x[:64],
        y[:64],
        input_shape=x.shape[1:],
        num_classes=10,
        epoch=1,
        seed=0,
    )
    return int(x.nbytes + y.nbytes)


def _train_whole(
    db_url: str,
    dataset: str,
    partitions: int,
    config: dict,
    epochs: int,
    seed: int,
    shape: tuple,
    classes: int,
) -> float:
    from automl_core.training import engine

    x, y = _full_data(db_url, dataset, partitions)
    state = None
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        state, _ = engine.train_partition(
            config, state, x, y, input_shape=shape, num_classes=classes, epoch=epoch, seed=seed
        )
    return time.perf_counter() - start


# --- the three approaches ---------------------------------------------------------------------


class _MemorySink:
    def __init__(self) -> None:
        self.jobs: list = []

    def record_jobs(self, rows) -> None:  # type: ignore[no-untyped-def]
        self.jobs.extend(rows)

    def record_epoch(self, trial_id, epoch, metrics, state) -> None:  # type: ignore[no-untyped-def]
        pass

    def load_checkpoint(self, trial_id):  # type: ignore[no-untyped-def]
        return 0, None


def run_mop(db_url: str, info, configs: list[dict], epochs: int, seeded_order: bool = True) -> dict:  # type: ignore[no-untyped-def]
    from automl_core.executors.dask_executor import DaskExecutor
    from automl_core.executors.dask_worker import DataRef
    from automl_core.mop.runner import HopperRunner, TrainingTarget

    data = DataRef(db_url, info.name, tuple(info.feature_shape), info.num_classes)
    executor = DaskExecutor(data, list(range(info.partitions)), seed=0)
    try:
        held = []
        for p in range(info.partitions):
            held.append(
                executor.client.submit(
                    _warm,
                    db_url,
                    info.name,
                    info.partitions,
                    False,
                    p,
                    workers=[executor.owner(p)],
                    pure=False,
                ).result()
            )
        sink = _MemorySink()
        targets = [TrainingTarget(i, c, 0, epochs) for i, c in enumerate(configs)]
        start = time.time()
        HopperRunner(executor, sink, seed=0, evaluate=False, seeded_order=seeded_order).run(targets)
        wall = time.time() - start
    finally:
        executor.close()
    busy = sum(j.ended_at - j.started_at for j in sink.jobs)
    first = min(j.started_at for j in sink.jobs)
    last = max(j.ended_at for j in sink.jobs)
    return {
        "wall": wall,
        "utilisation": busy / (info.partitions * (last - first)),
        "utilisation_incl_driver": busy / (info.partitions * wall),
        "bytes_per_worker": max(held),
        "jobs": len(sink.jobs),
    }


def run_cluster(db_url: str, info, configs: list[dict], epochs: int, workers: int) -> dict:  # type: ignore[no-untyped-def]
    """(a) with workers=1, (b) with workers=P: whole models on workers holding all data."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit=0,
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    client = Client(cluster, set_as_default=False)
    try:
        addresses = sorted(client.scheduler_info()["workers"])
        held = [
            client.submit(
                _warm, db_url, info.name, info.partitions, True, 0, workers=[a], pure=False
            ).result()
            for a in addresses
        ]
        start = time.time()
        futures = [
            client.submit(
                _train_whole,
                db_url,
                info.name,
                info.partitions,
                c,
                epochs,
                i,
                tuple(info.feature_shape),
                info.num_classes,
                pure=False,
            )
            for i, c in enumerate(configs)
        ]
        busy = sum(f.result() for f in futures)
        wall = time.time() - start
    finally:
        client.close()
        cluster.close()
    return {"wall": wall, "utilisation": busy / (workers * wall), "bytes_per_worker": max(held)}


def _median_of(results: list[dict]) -> dict:
    import statistics

    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rows", type=int, default=16000)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use the embedded PostgreSQL (AUTOML_HOME) instead of a server at AUTOML_TEST_PG_URL",
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--visit-order",
        choices=("seeded", "free"),
        default="seeded",
        help="the MOP run's order of partitions (automl_core.mop.scheduler)",
    )
    args = parser.parse_args()

    from automl_core.cli import main as automl
    from automl_core.data.reader import dataset_info
    from automl_core.store.connection import connect

    if args.embedded:
        from automl_core.store.connection import database_url

        os.environ.pop("AUTOML_DB_URL", None)
        db_url = database_url()
    else:
        db_url = create_database()
        os.environ["AUTOML_DB_URL"] = db_url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            npz = Path(tmp) / "bench.npz"
            make_data(npz, args.rows, args.features, 10, seed=0)
            assert automl(["db", "init"]) == 0
            assert automl(["data", "load", f"npz:{npz}", "--table", "bench", "--replace"]) == 0
            assert (
                automl(
                    [
                        "data",
                        "prepare",
                        "bench",
                        "--partitions",
                        str(args.partitions),
                        "--validation-fraction",
                        "0.1",
                    ]
                )
                == 0
            )
        conn = connect(db_url)
        info = dataset_info(conn, "bench")
        conn.close()
        configs = model_configs(args.models)
        # Interleaved rounds, medians reported: a load spike on a shared machine then
        # hits every approach alike instead of the one that happened to run during it.
        rounds = []
        for _ in range(args.repeats):
            rounds.append(
                (
                    run_mop(db_url, info, configs, args.epochs, args.visit_order == "seeded"),
                    run_cluster(db_url, info, configs, args.epochs, workers=1),
                    run_cluster(db_url, info, configs, args.epochs, workers=args.partitions),
                )
            )
        mop, seq, tp = (_median_of([r[i] for r in rounds]) for i in range(3))
    finally:
        if not args.embedded:
            drop_database(db_url)

    import torch

    device = "cuda: " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {device}",
        "K": args.models,
        "P": args.partitions,
        "E": args.epochs,
        "visit_order": args.visit_order,
        "rows": info.n_train,
        "features": args.features,
        "mop_wall_s": round(mop["wall"], 2),
        "mop_utilisation": round(mop["utilisation"], 3),
        "mop_utilisation_incl_driver": round(mop["utilisation_incl_driver"], 3),
        "sequential_wall_s": round(seq["wall"], 2),
        "task_parallel_wall_s": round(tp["wall"], 2),
        "task_parallel_utilisation": round(tp["utilisation"], 3),
        "speedup_vs_sequential": round(seq["wall"] / mop["wall"], 2),
        "speedup_vs_task_parallel": round(tp["wall"] / mop["wall"], 2),
        "mop_data_mb_per_worker": round(mop["bytes_per_worker"] / 1e6, 2),
        "sequential_data_mb_per_worker": round(seq["bytes_per_worker"] / 1e6, 2),
        "task_parallel_data_mb_per_worker": round(tp["bytes_per_worker"] / 1e6, 2),
    }
    print(json.dumps(figures, indent=2))
    print(
        f"| {figures['machine']} | K={args.models} P={args.partitions} E={args.epochs} "
        f"| {figures['mop_utilisation']} | {figures['speedup_vs_sequential']}x "
        f"| {figures['speedup_vs_task_parallel']}x | {figures['mop_data_mb_per_worker']} MB "
        f"vs {figures['task_parallel_data_mb_per_worker']} MB |"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
