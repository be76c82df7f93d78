"""The physical limit of the many-small-models benchmark: each configuration's epoch, alone.

One epoch (a training pass over all training rows + evaluation over the validation rows,
with the hopper's training functions) of every configuration that was trained, on one
torch thread, in a fresh subprocess (this file's ``main``) after the searches; the
median of ``PRICE_EPOCHS`` epochs is its price. limit = sum over the trained (trial,
epoch) rows of that price / the workers. Priced again with a second process training the
same configurations on the other core all the while ("cores busy").
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from small_models_common import (
    ROOT,
    SEED,
    WORKERS,
    automl_env,
    canonical,
    load_arrays,
    timed_subprocess,
)

PRICE_EPOCHS = 3  # epochs timed per configuration; the median is its epoch time
LOAD_MAX_S = 900  # the load beside a pricing never runs longer than this
# The machine's speed, taken before and after each path: one mid-sized configuration of the
# space, priced as any other but over more epochs (~1 s of training here).
REFERENCE = {
    "architecture": "cnn1d", "channels": 16, "kernel_size": 5, "depth": 2,
    "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 64,
}  # fmt: skip
REFERENCE_EPOCHS = 15


def _priced_epoch(engine: Any, key: str, data: Mapping[str, Any], epochs: int) -> list[float]:
    """Seconds of each of ``epochs`` epochs (training pass + evaluation) of one config."""
    (x, y), (xv, yv) = data["train"], data["valid"]
    shape, classes = data["shape"], data["classes"]
    config, state, times = json.loads(key), None, []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        state, _ = engine.train_partition(
            config, state, x, y, input_shape=shape, num_classes=classes, epoch=epoch, seed=SEED
        )
        engine.evaluate_partition(config, state, xv, yv, input_shape=shape, num_classes=classes)
        times.append(time.perf_counter() - start)
    return times


def price_main(
    db_url: str, in_path: Path, out_path: Path, *, load: bool = False, epochs: int = PRICE_EPOCHS
) -> None:
    """Median seconds of one epoch (train over all training rows + evaluate) per config,
    over ``epochs`` epochs.

    ``load``: instead, train the same configurations round-robin until terminated (the
    work beside a pricing run that measures with both cores busy); writes ``out_path``
    once ready, so that the pricing starts only when the load runs.
    """
    import torch

    from automl_core.training import engine

    torch.set_num_threads(1)
    data = load_arrays(db_url)
    configs: list[str] = json.loads(in_path.read_text())
    _priced_epoch(engine, json.dumps({"architecture": "mlp"}), data, 1)  # torch's lazy imports
    if load:
        # Until terminated; an orphan (its benchmark killed) stops by itself.
        parent, deadline = os.getppid(), time.monotonic() + LOAD_MAX_S
        out_path.write_text("ready")
        while os.getppid() == parent and time.monotonic() < deadline:
            for key in configs:
                _priced_epoch(engine, key, data, 1)
        return
    prices = {key: statistics.median(_priced_epoch(engine, key, data, epochs)) for key in configs}
    out_path.write_text(json.dumps(prices))


def price(db_url: str, configs: set[str], tmp: Path, *, beside: bool = False) -> dict[str, float]:
    """Epoch seconds per canonical config, measured in a fresh subprocess.

    ``beside``: with a second process training the same configurations on the other
    core all the while: what an epoch costs on this machine when both cores work, as
    they do in every 2-worker search.
    """
    tag = "busy" if beside else "alone"
    in_path, out_path = tmp / "price_in.json", tmp / f"price_{tag}.json"
    in_path.write_text(json.dumps(sorted(configs)))
    env = automl_env(db_url, tmp)

    with contextlib.ExitStack() as stack:
        if beside:
            load_cmd = _command("load", db_url, in_path, tmp / "load_ready")
            stack.enter_context(_load_beside(load_cmd, env, tmp))
        cmd = _command("price", db_url, in_path, out_path)
        done = timed_subprocess(cmd, env, tmp / f"price_{tag}.log")
    # The prices are the denominator of every ratio: say how busy the machine was.
    print(f"pricing ({tag}): {done['wall']:.1f} s, mean load {done['load'] or 0:.1f}", flush=True)
    return dict(json.loads(out_path.read_text()))


def reference_epoch(db_url: str, tmp: Path) -> float:
    """Seconds of one epoch of ``REFERENCE`` now, alone (median of ``REFERENCE_EPOCHS``).

    Taken before and after each path: the limit is priced after the searches, so a
    machine whose speed drifts between them (this one's has moved by 2x within an hour)
    shows here, and its ratios can be read accordingly.
    """
    in_path, out_path = tmp / "reference_in.json", tmp / "reference.json"
    in_path.write_text(json.dumps([canonical(REFERENCE)]))
    cmd = [*_command("price", db_url, in_path, out_path), "--epochs", str(REFERENCE_EPOCHS)]
    timed_subprocess(cmd, automl_env(db_url, tmp), tmp / "reference.log")
    return float(next(iter(json.loads(out_path.read_text()).values())))


def _command(role: str, db_url: str, in_path: Path, out_path: Path) -> list[str]:
    """This script as a subprocess in ``role`` ("price" or "load")."""
    return [sys.executable, __file__, "--role", role, "--db-url", db_url,
            "--in", str(in_path), "--out", str(out_path)]  # fmt: skip


@contextlib.contextmanager
def _load_beside(cmd: list[str], env: Mapping[str, str], tmp: Path) -> Iterator[None]:
    """Run the load process (``--role load``) while the block runs; ready within 120 s."""
    ready = Path(cmd[-1])
    ready.unlink(missing_ok=True)
    with (tmp / "load.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=dict(env), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the load process did not start: see {tmp / 'load.log'}")
            time.sleep(0.1)
        yield
        if proc.poll() is not None:  # it must have run beside the whole pricing
            raise SystemExit(f"the load process ended during the pricing: see {tmp / 'load.log'}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@dataclasses.dataclass(frozen=True)
class Prices:
    """Epoch seconds per canonical config: priced alone (the issue's physical limit) and
    with the other core busy with the same kind of work (what this machine gives two
    workers)."""

    alone: Mapping[str, float]
    busy: Mapping[str, float]


def limit_of(trained: list[tuple[str, int]], prices: Mapping[str, float]) -> float:
    """Total training work (epoch price x epochs trained) over the workers."""
    return sum(prices[c] * n for c, n in trained) / WORKERS


def main() -> None:
    parser = argparse.ArgumentParser(description="Price epochs (started by bench_small_models.py)")
    parser.add_argument("--role", choices=("price", "load"), required=True)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--in", dest="in_path", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=PRICE_EPOCHS)
    args = parser.parse_args()
    price_main(args.db_url, args.in_path, args.out, load=args.role == "load", epochs=args.epochs)


if __name__ == "__main__":
    main()
