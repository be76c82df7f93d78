"""What the parts of the many-small-models benchmark share: the search, its data, its runs.

``bench_small_models.py`` runs the benchmark; ``small_models_airflow.py`` (the Airflow path),
``small_models_peer.py`` (the Optuna peer) and ``small_models_pricing.py`` (the physical
limit) are its parts, the last two also run as its subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from process_memory import PssSampler  # noqa: E402

AUTOML = str(Path(sys.executable).with_name("automl"))
DATASET = "signals"
SPACE = ROOT / "examples" / "spaces" / "signals.yaml"
DAG_ID = "automl_hyperband_signals"
R, ETA, SEED, WORKERS = 27, 3, 0, 2
N_TRIALS = 49  # what Hyperband R=27, eta=3 samples: brackets of 27, 12, 6 and 4
SUBPROCESS_TIMEOUT_S = 1800  # a search, the peer or a pricing


def query(db_url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """All rows of one read-only statement."""
    import psycopg2

    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def load_arrays(db_url: str) -> dict[str, Any]:
    """The packed, normalised rows of every partition: train and valid, and the data's shape."""
    import numpy as np
    import psycopg2

    from automl_core.data.reader import dataset_info, read_partition

    conn = psycopg2.connect(db_url)
    try:
        info = dataset_info(conn, DATASET)
        out: dict[str, Any] = {"shape": tuple(info.feature_shape), "classes": info.num_classes}
        for split in ("train", "valid"):
            parts = [
                read_partition(conn, DATASET, p, split, info=info) for p in range(info.partitions)
            ]
            out[split] = (
                np.concatenate([x for x, _ in parts]),
                np.concatenate([y for _, y in parts]),
            )
    finally:
        conn.close()
    return out


def timed_subprocess(cmd: list[str], env: Mapping[str, str], log: Path) -> dict[str, float | None]:
    """Run ``cmd`` to the end (output to ``log``); wall seconds, peak tree PSS in MB, mean load.

    A run past ``SUBPROCESS_TIMEOUT_S`` is killed and the benchmark stops."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        with PssSampler(proc.pid) as sampler:
            try:
                rc = proc.wait(timeout=SUBPROCESS_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=60)
                raise SystemExit(
                    f"{' '.join(cmd[:3])} ... ran past {SUBPROCESS_TIMEOUT_S} s"
                ) from None
        wall = time.perf_counter() - start
    if rc != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed (exit {rc}):\n{tail}")
    return {"wall": wall, "peak_pss_mb": sampler.peak / 1e6, "load": mean(sampler.loads)}


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def automl_env(db_url: str, tmp: Path) -> dict[str, str]:
    """The environment of an ``automl`` subprocess: the benchmark's database, TMPDIR inside."""
    env = dict(os.environ)
    env.update({"AUTOML_DB_URL": db_url, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
    return env


def canonical(config: Mapping[str, Any]) -> str:
    """A configuration as JSON with sorted keys: the key its epochs are priced under."""
    return json.dumps(dict(config), sort_keys=True)
