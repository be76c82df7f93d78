"""Benchmark: load, prepare and read back a >= 200 MB data set on the local PostgreSQL.

Generates a seeded data set (default 200,000 rows x 256 float32 features = 204.8 MB, 10
classes), writes it as .npz, then on a fresh database (created and dropped here):

1. load   ``read_source("npz:...")`` + ``load_source`` (binary COPY into the source table)
2. prepare ``prepare_dataset(P=4)`` (read with binary COPY, shuffle, normalise, pack)
3. read   ``read_partition`` for every train partition, against a plain text
   ``COPY (SELECT x, y FROM packed WHERE ...) TO STDOUT`` of the same rows and a named
   server-side cursor fetching the same rows, in the same run (best of --repeat).

Prints a markdown table for benchmarks/RESULTS.md and the command that made it.

    .venv/bin/python benchmarks/bench_data.py [--rows 200000 --features 256 --partitions 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automl_core.data.load import load_source  # noqa: E402
from automl_core.data.prepare import prepare_dataset  # noqa: E402
from automl_core.data.reader import dataset_info, read_partition  # noqa: E402
from automl_core.data.sources import read_source  # noqa: E402
from automl_core.store.migrations import migrate  # noqa: E402

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


class _CountingSink:
    """A file object that counts what COPY writes and keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.bytes += len(data)
        return len(data)


def _with_db(url: str, name: str) -> str:
    return url.rpartition("/")[0] + "/" + name


def _admin(url: str, statement: sql.Composable) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement)
    conn.close()


def _plain_copy(conn: Any, packed: str, p: int) -> int:
    query = sql.SQL(
        """COPY (SELECT x, y FROM {} WHERE split = 'train' AND "partition" = {}) TO STDOUT"""
    ).format(sql.Identifier(packed), sql.Literal(p))
    sink = _CountingSink()
    with conn.cursor() as cur:
        cur.copy_expert(query.as_string(conn), sink)
    return sink.bytes


def _named_cursor(conn: Any, packed: str, p: int) -> int:
    query = sql.SQL(
        """SELECT x, y FROM {} WHERE split = 'train' AND "partition" = %s ORDER BY buffer"""
    ).format(sql.Identifier(packed))
    total = 0
    with conn.cursor(name=f"bench_{p}") as cur:
        cur.itersize = 4
        cur.execute(query, (p,))
        for xb, yb in cur:
            total += len(xb) + len(yb)
    return total


def _best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="reader runs per partition")
    parser.add_argument("--admin-url", default=os.environ.get("AUTOML_TEST_PG_URL", DEFAULT_ADMIN))
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.features), dtype=np.float32) * 3 + 1
    y = rng.integers(0, args.classes, args.rows)
    mb = x.nbytes / 1e6
    name = f"automl_bench_{uuid.uuid4().hex[:10]}"
    _admin(args.admin_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    results: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.npz"
            np.savez(path, x=x, y=y)
            del x, y
            conn = psycopg2.connect(_with_db(args.admin_url, name))
            migrate(conn)

            t0 = time.perf_counter()
            data = read_source(f"npz:{path}")
            results["read_file"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            load_source(conn, data, "bench")
            results["load"] = time.perf_counter() - t0
            del data

        t0 = time.perf_counter()
        prepare_dataset(conn, "bench", partitions=args.partitions, seed=args.seed)
        results["prepare"] = time.perf_counter() - t0

        info = dataset_info(conn, "bench")
        reader = plain = cursor = 0.0
        plain_bytes = 0
        for p in range(info.partitions):
            reader += _best(lambda p=p: read_partition(conn, "bench", p, info=info), args.repeat)
            plain += _best(lambda p=p: _plain_copy(conn, info.packed_table, p), args.repeat)
            cursor += _best(lambda p=p: _named_cursor(conn, info.packed_table, p), args.repeat)
            plain_bytes += _plain_copy(conn, info.packed_table, p)
        conn.rollback()
        conn.close()
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        _admin(args.admin_url, drop.format(sql.Identifier(name)))

    read_mb = info.n_train * args.features * 4 / 1e6
    n = args.rows
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpus = os.cpu_count()
    rows = [
        ("read .npz (read_source)", n, mb, results["read_file"]),
        ("load (binary COPY into source table)", n, mb, results["load"]),
        (
            f"prepare (P={args.partitions}: read, shuffle, normalise, pack)",
            n,
            mb,
            results["prepare"],
        ),
        ("read_partition, all train partitions (binary COPY)", info.n_train, read_mb, reader),
        ("plain text COPY (SELECT x, y ...) TO STDOUT, same rows", info.n_train, read_mb, plain),
        ("named cursor SELECT x, y, same rows", info.n_train, read_mb, cursor),
    ]
    print(
        f"\n### Data: {n:,} rows x {args.features} float32 features ({mb:.1f} MB), "
        f"{args.partitions} partitions\n"
    )
    print("| step | rows | MB | seconds | rows/s | MB/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r, m, s in rows:
        print(f"| {label} | {r:,} | {m:.1f} | {s:.2f} | {r / s:,.0f} | {m / s:.1f} |")
    print(
        f"\nread_partition vs plain text COPY of the same rows: {plain / reader:.2f}x the "
        f"throughput (plain COPY moved {plain_bytes / 1e6:.1f} MB of hex text); vs named "
        f"cursor: {cursor / reader:.2f}x. Reader times: best of {args.repeat} per partition."
    )
    print(
        f"\nMachine: {cpus} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"local PostgreSQL over TCP; peak RSS {rss:.0f} MB."
    )
    command = " ".join([".venv/bin/python benchmarks/bench_data.py", *sys.argv[1:]])
    print(f"Command: `{command}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
