"""Search quality at equal epoch budgets: random, Hyperband and Hyperopt, held-out accuracy.

    .venv/bin/python benchmarks/bench_search_quality.py [--seeds 5] [--data digits,signals]

For each data set (the built-in digits, and the harder built-in 1-d signals that
``automl_core.data.signals.make_signals`` generates offline from a seed), 20% of the rows
are held out (seeded), the rest loaded as the train split of an npz (``automl data load
npz:...``; the held-out rows as its test split) and prepared with
``--validation-fraction 0.2``, so model selection never sees the test rows. Then, for each
seed, three searches over the same space (examples/spaces/<data>.yaml) with about the
same number of trained epochs:

- Hyperband R=9, eta=3: brackets of 9, 5 and 3 configurations, 69 epochs;
- random: 8 configurations x 9 epochs = 72 epochs;
- Hyperopt (TPE): 2 batches of 4 x 9 epochs = 72 epochs (start-up sized to the budget).

Each search hands over its best model (best trial, best epoch); ``automl evaluate ...
--split test`` scores it on the held-out rows. Prints, per data set and method, the mean
and standard deviation of held-out accuracy over the seeds, and the trained epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_databases import create_database, drop_database  # noqa: E402

AUTOML = str(Path(sys.executable).with_name("automl"))
HOLDOUT, SPLIT_SEED = 0.2, 2026
EPOCHS = 9
METHODS = {
    "random": ["--method", "random", "--n", "8", "--epochs", str(EPOCHS), "--batch-size", "8"],
    "hyperband": ["--method", "hyperband", "--R", str(EPOCHS), "--eta", "3"],
    "hyperopt": ["--method", "hyperopt", "--batches", "2", "--batch-size", "4", "--epochs", str(EPOCHS)],
}  # fmt: skip


def holdout_npz(name: str, path: Path) -> None:
    """The data set's rows, 80% as train and 20% as test (seeded), as an npz."""
    from automl_core.data.sources import read_source

    data = read_source(name)
    x = np.concatenate([p.x for p in data.parts])
    y = np.concatenate([np.asarray(p.labels) for p in data.parts])
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_test = int(round(HOLDOUT * len(y)))
    test, train = order[:n_test], order[n_test:]
    np.savez(path, x=x[train], y=y[train], x_test=x[test], y_test=y[test])


def automl(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([AUTOML, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"automl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def epochs_trained(db_url: str, name: str) -> int:
    import psycopg2

    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM automl.trial_epochs te JOIN automl.experiments e "
                "ON e.id = te.experiment_id WHERE e.name = %s",
                (name,),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--data", default="digits,signals")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    db_url = create_database()
    tmp_root = Path(os.environ.get("TMPDIR") or ROOT / ".automl" / "tmp")
    tmp_root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, AUTOML_DB_URL=db_url, PYTHONUNBUFFERED="1")
    results: dict[str, dict[str, list[float]]] = {}
    epochs: dict[str, dict[str, list[int]]] = {}
    try:
        automl(["db", "init"], env)
        with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
            env["TMPDIR"] = tmp
            for data in args.data.split(","):
                npz = Path(tmp) / f"{data}.npz"
                holdout_npz(data, npz)
                automl(["data", "load", f"npz:{npz}", "--table", data, "--replace"], env)
                automl(["data", "prepare", data, "--partitions", "2",
                        "--validation-fraction", "0.2", "--seed", "0"], env)  # fmt: skip
                space = str(ROOT / "examples" / "spaces" / f"{data}.yaml")
                for method, options in METHODS.items():
                    for seed in range(args.seeds):
                        name = f"quality-{data}-{method}-{seed}"
                        automl(["run", "--data", data, "--space", space, *options,
                                "--seed", str(seed), "--name", name, "--no-progress"], env)  # fmt: skip
                        held = json.loads(
                            automl(
                                ["evaluate", name, "--table", data, "--split", "test", "--json"],
                                env,
                            )  # fmt: skip
                        )
                        results.setdefault(data, {}).setdefault(method, []).append(held["accuracy"])
                        epochs.setdefault(data, {}).setdefault(method, []).append(
                            epochs_trained(db_url, name)
                        )
                        print(f"{name}: held-out accuracy {held['accuracy']:.4f}", flush=True)
    finally:
        drop_database(db_url)
    print("\n| data | method | seeds | held-out accuracy: mean | sd | min | max | epochs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for data, by_method in results.items():
        for method, accs in by_method.items():
            sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
            print(
                f"| {data} | {method} | {len(accs)} | {statistics.mean(accs):.4f} | {sd:.4f} "
                f"| {min(accs):.4f} | {max(accs):.4f} | {statistics.mean(epochs[data][method]):.0f} |"
            )
    if args.json:
        args.json.write_text(json.dumps({"accuracy": results, "epochs": epochs}, indent=2))


if __name__ == "__main__":
    main()
