"""Orchestration CPU per sub-epoch: what moving a small model between two workers costs.

    .venv/bin/python benchmarks/bench_dispatch.py [--visits 600] [--work-ms 5] [--state-kb 50]

The project's local cluster (two single-threaded worker processes, as `automl run` starts)
runs ``--visits`` sub-epochs of 8 models. A sub-epoch is a fixed amount of CPU work
(``--work-ms`` of the worker thread's CPU time, no torch) that takes a model state of
``--state-kb`` and returns a new one; each model alternates between the two workers, two
sub-epochs are in flight per worker (one running, one queued), and the driver pulls a
model's state at the end of each epoch (every second visit), as the hopper does for its
checkpoint. Printed: the CPU seconds that the driver and both worker processes used
beyond the sub-epochs' own work, per visit, for two ways of driving the same pattern:

- ``tasks``: one Dask task per visit, pinned to its worker, taking the previous visit's
  output future as its argument (Dask copies the state worker to worker), what
  ``executors/dask_executor.py`` does;
- ``actors``: one Dask actor per worker (``Client.submit(..., actor=True)``); a visit is a
  method call from the driver, and the state moves by a direct call from one actor to
  the other, so the scheduler takes no part (a prototype here, not the product's path).

The figure is the cost of the dispatch itself, which on a 2-core machine competes with
training for the same cores (benchmarks/RESULTS.md, "A floor under the ratio").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = 8
IN_FLIGHT = 2  # per worker: one running, one queued
DEADLINE_S = 120.0  # every wait of a run
TICKS = os.sysconf("SC_CLK_TCK")


def sub_epoch(state: bytes, work_ms: float) -> bytes:
    """``work_ms`` of this thread's CPU time, then a new state of the same size."""
    until = time.thread_time() + work_ms / 1000
    while time.thread_time() < until:
        pass
    return bytes(len(state))


def process_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (Linux ``/proc``)."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


class _Plan:
    """Which model each worker takes next: model m's k-th visit is on worker (m + k) % 2."""

    def __init__(self, visits: int) -> None:
        self.visits = visits
        self.next_visit = dict.fromkeys(range(MODELS), 0)
        self.idle = list(range(MODELS))  # models with no visit in flight
        self.submitted = 0

    def worker_of(self, model: int) -> int:
        return (model + self.next_visit[model]) % 2

    def take(self, worker: int) -> tuple[int, int] | None:
        """(model, its visit number) for ``worker``, or None."""
        if self.submitted >= self.visits:
            return None
        for model in self.idle:
            if self.worker_of(model) == worker:
                self.idle.remove(model)
                visit = self.next_visit[model]
                self.next_visit[model] += 1
                self.submitted += 1
                return model, visit
        return None


def run_tasks(client: Any, workers: list[str], plan: _Plan, work_ms: float, size: int) -> None:
    from distributed import as_completed

    latest: dict[int, Any] = {}
    flights: dict[str, tuple[int, int, int]] = {}  # future key -> (model, visit, worker)
    pending = as_completed([], loop=client.loop)

    def fill(w: int) -> None:
        while sum(f[2] == w for f in flights.values()) < IN_FLIGHT:
            picked = plan.take(w)
            if picked is None:
                return
            model, visit = picked
            state = latest.get(model, bytes(size))
            future = client.submit(
                sub_epoch, state, work_ms, workers=[workers[w]], allow_other_workers=False,
                pure=False,
            )  # fmt: skip
            latest[model] = future
            flights[future.key] = (model, visit, w)
            pending.add(future)

    for w in (0, 1):
        fill(w)
    done = 0
    while done < plan.visits:
        future = next(pending)
        model, visit, w = flights.pop(future.key)
        if visit % 2 == 1:  # the end of the model's epoch: the driver pulls its state
            future.result(timeout=DEADLINE_S)
        done += 1
        plan.idle.append(model)
        for other in (w, 1 - w):
            fill(other)


class VisitActor:
    """A worker's actor: holds the states made here until a peer takes them."""

    def __init__(self) -> None:
        self.states: dict[int, bytes] = {}
        self.pool = ThreadPoolExecutor(1)  # the one training thread of the worker

    async def take(self, model: int) -> bytes:
        return self.states.pop(model)

    async def visit(self, model: int, peer: Any, work_ms: float, size: int, end: bool) -> Any:
        state = await peer.take(model) if peer is not None else bytes(size)
        new = await asyncio.get_running_loop().run_in_executor(self.pool, sub_epoch, state, work_ms)
        self.states[model] = new
        return new if end else None


def run_actors(address: str, workers: list[str], plan: _Plan, work_ms: float, size: int) -> None:
    from distributed import Client

    async def drive() -> None:
        async with Client(address, asynchronous=True) as client:
            handles = [
                await client.submit(VisitActor, workers=[w], allow_other_workers=False, actor=True)
                for w in workers
            ]
            flights: dict[asyncio.Future[Any], tuple[int, int]] = {}

            def fill(w: int) -> None:
                while sum(f[1] == w for f in flights.values()) < IN_FLIGHT:
                    picked = plan.take(w)
                    if picked is None:
                        return
                    model, visit = picked
                    peer = handles[1 - w] if visit > 0 else None
                    call = handles[w].visit(model, peer, work_ms, size, visit % 2 == 1)
                    flights[asyncio.ensure_future(call)] = (model, w)

            for w in (0, 1):
                fill(w)
            while flights:
                ended, _ = await asyncio.wait(
                    flights, timeout=DEADLINE_S, return_when=asyncio.FIRST_COMPLETED
                )
                if not ended:
                    raise TimeoutError(f"no visit ended within {DEADLINE_S} s")
                for call in ended:
                    call.result()
                    model, w = flights.pop(call)
                    plan.idle.append(model)
                for w in (0, 1):
                    fill(w)

    asyncio.run(asyncio.wait_for(drive(), DEADLINE_S * 10))


def measure(
    mode: str, client: Any, workers: list[str], pids: list[int], args: argparse.Namespace
) -> dict[str, float]:
    plan = _Plan(args.visits)
    size = args.state_kb * 1000
    run: Callable[[], None]
    if mode == "tasks":
        run = lambda: run_tasks(client, workers, plan, args.work_ms, size)  # noqa: E731
    else:
        address = client.scheduler.address
        run = lambda: run_actors(address, workers, plan, args.work_ms, size)  # noqa: E731
    cpu, driver, start = process_cpu(pids), process_cpu(pids[:1]), time.perf_counter()
    run()
    wall = time.perf_counter() - start
    cpu, driver = process_cpu(pids) - cpu, process_cpu(pids[:1]) - driver
    work = args.visits * args.work_ms / 1000
    return {
        "wall": wall,
        "overhead_ms": (cpu - work) / args.visits * 1000,
        "driver_ms": driver / args.visits * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, default=600)
    parser.add_argument("--work-ms", type=float, default=5.0, help="CPU work per visit")
    parser.add_argument("--state-kb", type=int, default=50, help="model state size")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode, interleaved")
    args = parser.parse_args()
    from distributed import Client

    from automl_core.executors.local_cluster import local_cluster

    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.visits} visits of "
          f"{args.work_ms} ms CPU, {args.state_kb} kB states, {MODELS} models, 2 workers")  # fmt: skip
    with local_cluster(2) as cluster, Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=DEADLINE_S)
        workers = sorted(client.scheduler_info()["workers"])
        worker_pids = client.run(os.getpid)
        pids = [os.getpid(), *(worker_pids[w] for w in workers)]
        for repeat in range(args.repeats):
            for mode in ("tasks", "actors"):
                r = measure(mode, client, workers, pids, args)
                print(f"{mode:6s} run {repeat + 1}: wall {r['wall']:.2f} s; orchestration CPU "
                      f"{r['overhead_ms']:.2f} ms per visit, of which the driver "
                      f"{r['driver_ms']:.2f} ms", flush=True)  # fmt: skip


if __name__ == "__main__":  # the workers are forked: nothing runs on import
    main()
