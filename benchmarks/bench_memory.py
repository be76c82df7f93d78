"""Memory over a long search: a 500-trial random search on digits, driver and workers.

    .venv/bin/python benchmarks/bench_memory.py [--trials 500] [--db-url URL]

``automl run --method random --n 500 --epochs 1`` on the built-in digits data (2
partitions, 2 workers) in a subprocess, on a fresh database. Every 2 s it samples the PSS
(``process_memory``) of the driver (the ``automl`` process) and of each Dask worker
process (the processes its fork server forked), and how many trials have finished (rows in
``automl.trial_epochs``). Prints the samples at 50, 100, 200, ... finished trials and the
growth from the first sample at or after 50 trials to the last: memory is *flat* when
each process grew by at most 10% or 30 MB (issue 10: states that no rung needs again are
released at once, so nothing should grow with the trials).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_databases import create_database, drop_database  # noqa: E402
from process_memory import pss_bytes, tree_pids  # noqa: E402

AUTOML = str(Path(sys.executable).with_name("automl"))
SPACE = ROOT / "examples" / "spaces" / "digits.yaml"
FLAT_FRACTION, FLAT_MB = 0.10, 30.0


def finished_trials(db_url: str, name: str) -> int:
    import psycopg2

    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('automl.trial_epochs') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0
            cur.execute(
                "SELECT count(DISTINCT te.trial_id) FROM automl.trial_epochs te "
                "JOIN automl.experiments e ON e.id = te.experiment_id WHERE e.name = %s",
                (name,),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def worker_pids(root: int) -> list[int]:
    """The Dask workers of the run ``root``: the processes its fork server forked (a
    forked worker keeps the server's command line; the server is a child of the run)."""

    def cmdline(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return b""

    def parent(pid: int) -> int | None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return int(stat[stat.rindex(")") + 2 :].split()[1])

    pids = tree_pids(root)
    servers = {p for p in pids if parent(p) == root and b"multiprocessing.forkserver" in cmdline(p)}
    return [p for p in pids if parent(p) in servers]


def run(db_url: str, trials: int, tmp: Path) -> list[dict[str, float]]:
    env = dict(os.environ, AUTOML_DB_URL=db_url, TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
    for args in (
        ["db", "init"],
        ["data", "load", "digits", "--table", "digits", "--replace"],
        ["data", "prepare", "digits", "--partitions", "2"],
    ):
        subprocess.run([AUTOML, *args], env=env, check=True, capture_output=True, cwd=ROOT)
    name = "bench-memory"
    cmd = [
        AUTOML, "run", "--data", "digits", "--space", str(SPACE), "--method", "random",
        "--n", str(trials), "--epochs", "1", "--workers", "2", "--no-progress", "--name", name,
    ]  # fmt: skip
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    with (tmp / "run.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        while proc.poll() is None:
            workers = sorted(pss_bytes(p) / 1e6 for p in worker_pids(proc.pid))
            samples.append(
                {
                    "t": time.monotonic() - started,
                    "trials": finished_trials(db_url, name),
                    "driver_mb": pss_bytes(proc.pid) / 1e6,
                    **{f"worker{i}_mb": mb for i, mb in enumerate(workers)},
                }
            )
            time.sleep(2.0)
    if proc.returncode != 0:
        raise SystemExit(f"automl run failed:\n{(tmp / 'run.log').read_text()[-3000:]}")
    return samples


def report(samples: list[dict[str, float]], trials: int) -> None:
    keys = sorted({k for s in samples for k in s if k.endswith("_mb")})
    if not any(k.startswith("worker") for k in keys):
        raise SystemExit("no worker process was found under the run: nothing to judge")
    print(f"| finished trials | seconds | {' | '.join(k[:-3] + ' PSS MB' for k in keys)} |")
    print("|---:|---:|" + "---:|" * len(keys))
    marks = [50 * 2**i for i in range(10) if 50 * 2**i < trials] + [trials]
    shown = []
    for mark in marks:
        row = next((s for s in samples if s["trials"] >= mark), None)
        if row is not None and row not in shown:
            shown.append(row)
    # The last sample with every worker alive: the end of the training, before the
    # cluster closes and the driver finalises (report, leaderboard).
    last = next(s for s in reversed(samples) if all(k in s for k in keys))
    if shown and shown[-1]["trials"] == last["trials"]:
        shown[-1] = last
    elif last not in shown:
        shown.append(last)
    for s in shown:
        cells = " | ".join(f"{s.get(k, 0.0):.0f}" for k in keys)
        print(f"| {s['trials']:.0f} | {s['t']:.0f} | {cells} |")
    first = next(s for s in samples if s["trials"] >= 50 and all(k in s for k in keys))
    verdicts = []
    for k in keys:
        grew = last[k] - first[k]
        flat = grew <= max(FLAT_MB, FLAT_FRACTION * first[k])
        verdicts.append(flat)
        print(f"{k[:-3]}: {first[k]:.0f} MB at {first['trials']:.0f} trials -> {last[k]:.0f} MB "
              f"at {last['trials']:.0f} ({grew:+.0f} MB): {'flat' if flat else 'GROWS'}")  # fmt: skip
    print("memory flat after the first 50 trials:", "yes" if all(verdicts) else "NO")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--db-url", help="use this (empty) database instead of a fresh one")
    args = parser.parse_args()
    db_url = args.db_url or create_database()
    tmp_root = Path(os.environ.get("TMPDIR") or ROOT / ".automl" / "tmp")
    tmp_root.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
            samples = run(db_url, args.trials, Path(tmp))
    finally:
        if not args.db_url:
            drop_database(db_url)
    report(samples, args.trials)


if __name__ == "__main__":
    main()
