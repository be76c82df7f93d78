"""Many small models: Hyperband (R=27, eta=3, 49 configurations) against its physical limit.

    .venv/bin/python benchmarks/bench_small_models.py [--airflow] [--db-url URL]

One run, on a fresh database (or ``--db-url``), with the built-in ``signals`` data
(4,000 rows x 40 steps, 10 classes) loaded and prepared into 2 partitions:

1. ``automl run`` (Hyperband, seed 0, examples/spaces/signals.yaml, 2 workers) in a
   subprocess: wall seconds, and the peak PSS of its process tree (sampled every 2 s).
2. With ``--airflow``: the same search through ``airflow standalone`` and its REST API
   (DAG ``automl_hyperband_signals``), timed from the trigger to success: once right
   after the server started ("cold": the executor's first task and the triggerer's
   first trigger import and set up Airflow's own machinery, ~2.5 s and ~4 s here), then
   again as a second run of the same server ("warm", as a long-running deployment's
   runs are), under another experiment name. Each prints where its time went.
3. A peer: Optuna (TPESampler + HyperbandPruner(1, 27, 3), 49 trials, 2 threads, one torch
   thread each) with plain training loops over the same packed rows and the same models.
4. Pricing, in a separate subprocess after the searches: one epoch (a training pass over all
   training rows + evaluation over the validation rows, with the hopper's training
   functions) of every configuration that was trained, alone, on one torch thread.
   limit = sum over the trained (trial, epoch) rows of that epoch time / 2 workers.
5. The same pricing again with a second process training the same configurations on the
   other core all the while: "limit, cores busy". On a machine whose cores slow each other
   down (shared caches, SMT siblings, a host's turbo budget), no 2-worker search can beat
   this one; the ratio of the two prices says how much the cores slow each other.
6. The machine's speed before and after each path: one epoch of a reference configuration,
   priced the same way (~3 s each). The limit is priced after the searches; where the
   machine's speed drifted in between, the ratios of that run drifted with it.

Prints one table: wall, limit, wall/limit, and for the automl paths the utilisation from
the job log (busy worker-seconds in automl.mop_jobs / (2 x wall), and over the log's span),
and "job time / priced" = busy worker-seconds / the same epochs priced alone.
The automl and Airflow paths are driven only through the CLI, the REST API and the tables
automl.experiments, automl.trials, automl.trial_epochs and automl.mop_jobs.

The parts: ``small_models_airflow.py`` (the Airflow path), ``small_models_peer.py`` (the
Optuna peer, run as its own process) and ``small_models_pricing.py`` (the limit, priced in
processes of its own); what they share is in ``small_models_common.py``.

Optuna is an optional extra: ``.venv/bin/pip install -c constraints.txt optuna==5.0.0``
(or ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench_databases import create_database, drop_database
from small_models_airflow import airflow_timeline, run_airflow
from small_models_common import (
    AUTOML,
    DATASET,
    ETA,
    ROOT,
    SEED,
    SPACE,
    WORKERS,
    R,
    automl_env,
    canonical,
    query,
    timed_subprocess,
)
from small_models_peer import run_optuna
from small_models_pricing import Prices, limit_of, price, reference_epoch

OPTUNA_HINT = (
    "Optuna is missing: install the benchmark extra with\n"
    "    .venv/bin/pip install -c constraints.txt optuna==5.0.0\n"
    "(or `.venv/bin/pip install -c constraints.txt -e '.[bench]'`), or pass --no-optuna."
)


# --- the automl paths (CLI, REST API, tables only) ----------------------------------------------


def prepare_data(db_url: str, tmp: Path) -> None:
    """Create the schema, load the built-in signals and pack them into 2 partitions."""
    env = automl_env(db_url, tmp)
    for args in (
        ["db", "init"],
        ["data", "load", DATASET, "--table", DATASET, "--replace"],
        ["data", "prepare", DATASET, "--partitions", str(WORKERS)],
    ):
        done = subprocess.run([AUTOML, *args], env=env, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"automl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def run_automl(db_url: str, name: str, tmp: Path, visit_order: str = "seeded") -> dict[str, Any]:
    """``automl run`` Hyperband in a subprocess: wall seconds and peak PSS of its tree."""
    cmd = [
        AUTOML, "run", "--data", DATASET, "--space", str(SPACE), "--method", "hyperband",
        "--R", str(R), "--eta", str(ETA), "--seed", str(SEED), "--workers", str(WORKERS),
        "--no-progress", "--name", name, "--visit-order", visit_order,
    ]  # fmt: skip
    result: dict[str, Any] = dict(
        timed_subprocess(cmd, automl_env(db_url, tmp), tmp / "automl_run.log")
    )
    return result


def experiment_figures(db_url: str, name: str) -> dict[str, Any]:
    """What the tables say about one experiment: its trained epochs and its job log."""
    rows = query(
        db_url,
        "SELECT id, created_at, finished_at, status FROM automl.experiments WHERE name = %s",
        (name,),
    )
    if not rows:
        raise SystemExit(f"no experiment named {name!r} in automl.experiments")
    exp_id, created, finished, status = rows[0]
    epochs = query(
        db_url,
        """SELECT t.trial_id, t.config::text, count(*)
           FROM automl.trial_epochs e JOIN automl.trials t USING (experiment_id, trial_id)
           WHERE e.experiment_id = %s GROUP BY t.trial_id, t.config::text""",
        (exp_id,),
    )
    busy, first, last, jobs = query(
        db_url,
        """SELECT sum(ended_at - started_at), min(started_at), max(ended_at), count(*)
           FROM automl.mop_jobs WHERE experiment_id = %s""",
        (exp_id,),
    )[0]
    best = query(
        db_url,
        "SELECT max(valid_accuracy) FROM automl.trial_epochs WHERE experiment_id = %s",
        (exp_id,),
    )[0][0]
    return {
        "experiment_id": exp_id,
        "status": status,
        "experiment_s": (finished - created).total_seconds() if finished else None,
        # (trial, config, epochs trained) for pricing; configs as canonical JSON.
        "trained": [(t, canonical(json.loads(c)), int(n)) for t, c, n in epochs],
        "busy_s": float(busy or 0.0),
        "span_s": float(last - first) if jobs else 0.0,
        "first_job": float(first) if jobs else None,
        "last_job": float(last) if jobs else None,
        "jobs": int(jobs),
        "best_valid_accuracy": best,
    }


# --- the table -------------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table (a missing figure is '-')."""

    def f(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        "| path | wall s | limit s | wall/limit | limit, cores busy s | wall/that "
        "| util. (2 x wall) | util. (job-log span) "
        "| job time / priced | trained epochs | best valid acc. | peak PSS MB | mean load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['path']} | {f(r['wall'], '.1f')} | {f(r['limit'], '.1f')} | "
            f"{f(r['wall'] / r['limit'], '.2f')}x | {f(r['limit_busy'], '.1f')} | "
            f"{f(r['wall'] / r['limit_busy'], '.2f')}x | {f(r.get('util_wall'), '.3f')} | "
            f"{f(r.get('util_span'), '.3f')} | {f(r.get('inflation'), '.2f')} | {r['epochs']} | {f(r.get('best'), '.3f')} | "
            f"{f(r.get('peak_pss_mb'), '.0f')} | {f(r.get('load'), '.1f')} |"
        )
    return "\n".join(lines)


def automl_row(
    path: str,
    wall: float,
    figures: Mapping[str, Any],
    prices: Prices,
    sampled: Mapping[str, Any],
) -> dict[str, Any]:
    """One table row of an automl path from its wall time and its experiment's tables.

    ``sampled`` holds what was sampled during the run (``peak_pss_mb``, ``load``), if any.
    """
    trained = [(c, n) for _, c, n in figures["trained"]]
    limit = limit_of(trained, prices.alone)
    return {
        "path": path,
        "wall": wall,
        "limit": limit,
        "limit_busy": limit_of(trained, prices.busy),
        "util_wall": figures["busy_s"] / (WORKERS * wall),
        "util_span": figures["busy_s"] / (WORKERS * figures["span_s"])
        if figures["span_s"]
        else None,
        # Busy job seconds over the same work priced alone: how much slower each job ran
        # in the hopper than in a plain process (wall/limit = this / util. (2 x wall)).
        "inflation": figures["busy_s"] / (WORKERS * limit),
        "epochs": sum(n for _, n in trained),
        "best": figures["best_valid_accuracy"],
        "peak_pss_mb": sampled.get("peak_pss_mb"),
        "load": sampled.get("load"),
    }


@contextlib.contextmanager
def benchmark_database(url: str | None) -> Iterator[str]:
    """``url`` as given, or a fresh database dropped at the end."""
    if url:
        yield url
        return
    made = create_database("automl_bench")
    try:
        yield made
    finally:
        drop_database(made)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-url", help="use this (empty) database instead of a fresh one")
    parser.add_argument(
        "--airflow",
        action="store_true",
        help="also run the search through airflow standalone + REST",
    )
    parser.add_argument(
        "--airflow-timeout", type=float, default=1800, help="seconds to wait for the DAG run"
    )
    parser.add_argument("--no-optuna", action="store_true", help="skip the Optuna peer")
    parser.add_argument(
        "--free-order",
        action="store_true",
        help="also run `automl run --visit-order free` (what the seeded order costs)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if not args.no_optuna:
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise SystemExit(OPTUNA_HINT) from None
    tmp_root = Path(os.environ.get("TMPDIR") or ROOT / ".automl" / "tmp")
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-small-", dir=tmp_root))
    tag = uuid.uuid4().hex[:6]
    with benchmark_database(args.db_url) as db_url:
        prepare_data(db_url, tmp)
        speed: list[tuple[str, float]] = []

        def probe(moment: str) -> None:
            speed.append((moment, reference_epoch(db_url, tmp)))
            print(f"reference epoch {moment}: {speed[-1][1] * 1000:.1f} ms", flush=True)

        probe("at the start")
        runs: dict[str, Any] = {"automl": run_automl(db_url, f"bench-small-cli-{tag}", tmp)}
        runs["automl"]["figures"] = experiment_figures(db_url, f"bench-small-cli-{tag}")
        print(f"automl run: {runs['automl']['wall']:.1f} s", flush=True)
        probe("after automl run")
        if args.free_order:
            name = f"bench-small-free-{tag}"
            runs["automl_free"] = run_automl(db_url, name, tmp, visit_order="free")
            runs["automl_free"]["figures"] = experiment_figures(db_url, name)
            print(f"automl run --visit-order free: {runs['automl_free']['wall']:.1f} s", flush=True)
            probe("after --visit-order free")
        if args.airflow:
            names = {"airflow": f"bench-small-af-{tag}", "airflow_warm": f"bench-small-af2-{tag}"}
            done = run_airflow(db_url, list(names.values()), tmp, args.airflow_timeout)
            for (key, name), run in zip(names.items(), done, strict=True):
                runs[key] = {**run, "figures": experiment_figures(db_url, name)}
                print(f"{key.replace('_', ' ')} REST: {run['wall']:.1f} s", flush=True)
            probe("after airflow")
        if not args.no_optuna:
            runs["optuna"] = run_optuna(db_url, tmp)
            print(f"optuna: {runs['optuna']['wall']:.1f} s", flush=True)
            probe("after optuna")
        runs["reference_epoch_s"] = speed
        configs = {
            c
            for k in ("automl", "automl_free", "airflow", "airflow_warm")
            if k in runs
            for _, c, _ in runs[k]["figures"]["trained"]
        }
        configs |= {canonical(t["config"]) for t in runs.get("optuna", {}).get("trials", [])}
        prices = Prices(price(db_url, configs, tmp), price(db_url, configs, tmp, beside=True))
    report(args, runs, prices)


def report(args: argparse.Namespace, runs: Mapping[str, Any], prices: Prices) -> None:
    """Print the table (and the figures as JSON with --json)."""
    a = runs["automl"]
    rows = [automl_row("automl run (CLI subprocess)", a["wall"], a["figures"], prices, a)]
    if "automl_free" in runs:
        f = runs["automl_free"]
        rows.append(automl_row("automl run --visit-order free", f["wall"], f["figures"], prices, f))
    for key, label in (("airflow", "airflow REST, cold"), ("airflow_warm", "airflow REST, warm")):
        if key in runs:
            af = runs[key]
            rows.append(
                automl_row(f"{label} (trigger to success)", af["wall"], af["figures"], prices, af)
            )
            rows.append(
                automl_row(f"{label} (run start to end)", af["run_s"], af["figures"], prices, {})
            )
    if "optuna" in runs:
        o = runs["optuna"]
        trained = [(canonical(t["config"]), t["epochs"]) for t in o["trials"]]
        base = {
            "limit": limit_of(trained, prices.alone),
            "limit_busy": limit_of(trained, prices.busy),
            "epochs": sum(n for _, n in trained),
            "best": o["best"],
        }
        rows.append(
            {
                "path": "optuna (subprocess)",
                "wall": o["wall"],
                "peak_pss_mb": o["peak_pss_mb"],
                "load": o.get("load"),
                **base,
            }
        )
        rows.append({"path": "optuna (study.optimize only)", "wall": o["optimize_s"], **base})
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores; Hyperband R={R} eta={ETA} seed {SEED}, {WORKERS} workers; "
        f"{len(prices.alone)} configurations priced, epoch "
        f"{min(prices.alone.values()):.3f}-{max(prices.alone.values()):.3f} s alone; with the other "
        f"core busy, epochs took {sum(prices.busy.values()) / sum(prices.alone.values()):.2f}x as long"
    )
    speed = runs["reference_epoch_s"]
    times = [t for _, t in speed]
    print(
        "machine speed, one epoch of the reference configuration (cnn1d, alone, one thread): "
        + ", ".join(f"{t * 1000:.0f} ms {moment}" for moment, t in speed)
        + f"; slowest/fastest {max(times) / min(times):.2f}x (the limit is priced after the last)"
    )
    print(
        f"automl run: experiment {a['figures']['experiment_s'] or 0:.1f} s of {a['wall']:.1f} s wall, "
        f"{a['figures']['jobs']} jobs, job-log span {a['figures']['span_s']:.1f} s"
    )
    print(table(rows))
    for key in ("airflow", "airflow_warm"):
        if key in runs:
            print(f"\nThe {key.replace('_', ' ')} REST-triggered run, in seconds from its start:")
            print(airflow_timeline(runs[key]))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"runs": runs, "prices": dataclasses.asdict(prices), "rows": rows},
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
