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

Prints one table: wall, limit, wall/limit, and for the automl paths the utilisation from
the job log (busy worker-seconds in automl.mop_jobs / (2 x wall), and over the log's span),
and "job time / priced" = busy worker-seconds / the same epochs priced alone.
The automl and Airflow paths are driven only through the CLI, the REST API and the tables
automl.experiments, automl.trials, automl.trial_epochs and automl.mop_jobs.

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
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_databases import create_database, drop_database  # noqa: E402
from process_memory import PssSampler  # noqa: E402

AUTOML = str(Path(sys.executable).with_name("automl"))
DATASET = "signals"
SPACE = ROOT / "examples" / "spaces" / "signals.yaml"
DAG_ID = "automl_hyperband_signals"
R, ETA, SEED, WORKERS = 27, 3, 0, 2
N_TRIALS = 49  # what Hyperband R=27, eta=3 samples: brackets of 27, 12, 6 and 4
PRICE_EPOCHS = 3  # epochs timed per configuration; the median is its epoch time
LOAD_MAX_S = 900  # the load beside a pricing never runs longer than this
SUBPROCESS_TIMEOUT_S = 1800  # a search, the peer or a pricing
OPTUNA_HINT = (
    "Optuna is missing: install the benchmark extra with\n"
    "    .venv/bin/pip install -c constraints.txt optuna==5.0.0\n"
    "(or `.venv/bin/pip install -c constraints.txt -e '.[bench]'`), or pass --no-optuna."
)


# --- databases ---------------------------------------------------------------------------------


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
    return {"wall": wall, "peak_pss_mb": sampler.peak / 1e6, "load": _mean(sampler.loads)}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


# --- the automl paths (CLI, REST API, tables only) ----------------------------------------------


def automl_env(db_url: str, tmp: Path) -> dict[str, str]:
    """The environment of an ``automl`` subprocess: the benchmark's database, TMPDIR inside."""
    env = dict(os.environ)
    env.update({"AUTOML_DB_URL": db_url, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
    return env


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
        "trained": [(t, _canonical(json.loads(c)), int(n)) for t, c, n in epochs],
        "busy_s": float(busy or 0.0),
        "span_s": float(last - first) if jobs else 0.0,
        "first_job": float(first) if jobs else None,
        "last_job": float(last) if jobs else None,
        "jobs": int(jobs),
        "best_valid_accuracy": best,
    }


def _canonical(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


def run_airflow(db_url: str, names: list[str], tmp: Path, timeout: float) -> list[dict[str, Any]]:
    """The same search through ``airflow standalone`` and its REST API, once per name
    (one after the other, on the same server), then a clean stop.

    Set up as tests/e2e/conftest.py does: PostgreSQL metadata in a fresh database, the
    results database as the ``automl_db`` connection, the ``automl_training`` pool.
    """
    from tests.e2e.airflow_server import AirflowStandalone, session_processes

    metadata = create_database("automl_bench_airflow")
    home = Path(tempfile.mkdtemp(prefix="airflow-", dir=tmp))
    server = AirflowStandalone(
        home=home,
        metadata_url=metadata.replace("postgresql://", "postgresql+psycopg2://", 1),
        env_extra={"AIRFLOW_CONN_AUTOML_DB": db_url, "AUTOML_HOME": str(tmp / "automl_home")},
    )
    out: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        server.start()
        server.wait_for_dag(DAG_ID)
        server.unpause(DAG_ID)
        startup = time.perf_counter() - started
        for name in names:
            out.append({"startup_s": startup, **_trigger_and_wait(server, name, timeout)})
    finally:
        stragglers = server.stop()
        left = session_processes(server.process.pid) if server.process else []
        drop_database(metadata)
    for run in out:
        run["needed_sigkill"] = stragglers
    if left:
        raise SystemExit(f"processes of airflow standalone left running: {left}")
    return out


def _trigger_and_wait(server: Any, name: str, timeout: float) -> dict[str, Any]:
    """Trigger the DAG with a conf and poll every second until the run ends."""
    start = time.perf_counter()
    reply = server.trigger(DAG_ID, {"seed": SEED, "experiment_name": name})
    if reply.status_code not in (200, 201):
        raise SystemExit(f"trigger failed: {reply.status_code} {reply.text}")
    run_id = reply.json()["dag_run_id"]
    with PssSampler(server.process.pid) as sampler:
        while True:
            run = server.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                break
            if time.perf_counter() - start > timeout:
                raise SystemExit(
                    f"run {run_id} not done after {timeout} s: {server.task_states(DAG_ID, run_id)}"
                )
            time.sleep(1)
    wall = time.perf_counter() - start
    if run["state"] != "success":
        raise SystemExit(f"run {run_id} failed: {server.task_states(DAG_ID, run_id)}")
    run_s = (_iso(run["end_date"]) - _iso(run["start_date"])).total_seconds()
    return {
        "wall": wall,
        "run_s": run_s,
        "run_start": _iso(run["start_date"]).timestamp(),
        "tasks": _task_timeline(server, run_id),
        "peak_pss_mb": sampler.peak / 1e6,
        "load": _mean(sampler.loads),
        "run_id": run_id,
    }


def _task_timeline(server: Any, run_id: str) -> dict[str, dict[str, float | None]]:
    """Task id -> its queued, start and end times (epoch seconds; None if not reached)."""
    reply = server.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
    )
    return {
        t["task_id"]: {
            k: _iso(t[f]).timestamp() if t.get(f) else None
            for k, f in (("queued", "queued_when"), ("start", "start_date"), ("end", "end_date"))
        }
        for t in reply.json().get("task_instances", [])
    }


def airflow_timeline(af: Mapping[str, Any]) -> str:
    """Where the DAG run's wall time went: the tasks outside the groups, the job log's
    span and the groups' last task, in seconds from the run's start."""
    t0, tasks, figures = af["run_start"], af["tasks"], af["figures"]

    def at(value: float | None) -> str:
        return "-" if value is None else f"{value - t0:6.1f}"

    lines = ["task                 queued   start     end"]
    for task_id in ("validate_conf", "prepare_data", "create_experiment", "engine", "finalize"):
        if task_id in tasks:
            t = tasks[task_id]
            lines.append(f"{task_id:<18} {at(t['queued'])}  {at(t['start'])}  {at(t['end'])}")
    grouped = [t["end"] for k, t in tasks.items() if "." in k and t["end"] is not None]
    if grouped:
        lines.append(f"{'last group task':<18} {'':>6}  {'':>6}  {at(max(grouped))}")
    if figures["jobs"]:
        lines.append(
            f"{'job log':<18} {'':>6}  {at(figures['first_job'])}  {at(figures['last_job'])}"
        )
    return "\n".join(lines)


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the Optuna peer (runs as a subprocess: --role optuna) ----------------------------------------


def suggest_config(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration from the YAML space, through Optuna's suggest API.

    Understands the shapes examples/spaces/signals.yaml uses: a list of mappings is a
    conditional choice (its keys are suggested under the chosen option's name, so TPE keeps
    their distributions apart), a list of scalars is categorical, ``{uniform: [a, b]}`` and
    ``{loguniform: [a, b]}`` are floats, anything else is fixed.
    """
    config: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            # Each option is named by its first value ("mlp", "cnn1d", "sgd", ...).
            names = [str(next(iter(v.values()))) for v in value]
            name = trial.suggest_categorical(key, names)
            config.update(_suggest_flat(trial, value[names.index(name)], name))
        else:
            config.update(_suggest_flat(trial, {key: value}, ""))
    return config


def _suggest_flat(trial: Any, items: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, list):
            out[key] = trial.suggest_categorical(name, value) if len(value) > 1 else value[0]
        elif isinstance(value, dict) and set(value) == {"uniform"}:
            out[key] = trial.suggest_float(name, *value["uniform"])
        elif isinstance(value, dict) and set(value) == {"loguniform"}:
            out[key] = trial.suggest_float(name, *value["loguniform"], log=True)
        else:
            out[key] = value
    return out


def optuna_main(db_url: str, out_path: Path) -> None:
    """Optuna TPE + HyperbandPruner over the signals space, 49 trials on 2 threads."""
    import optuna
    import torch
    import yaml

    torch.set_num_threads(1)
    data = load_arrays(db_url)
    space = yaml.safe_load(SPACE.read_text())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=SEED),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=ETA),
    )
    # Pay torch's lazy imports (dynamo, on the first optimizer) before the clock starts, as
    # the automl workers do once per process.
    _train_trial({"architecture": "mlp", "hidden": 8, "depth": 1}, data, 1, None)
    start = time.perf_counter()
    study.optimize(
        lambda trial: _train_trial(suggest_config(trial, space), data, R, trial),
        n_trials=N_TRIALS,
        n_jobs=WORKERS,
    )
    wall = time.perf_counter() - start
    trials = [
        {
            "number": t.number,
            "config": t.user_attrs["config"],
            "epochs": t.user_attrs.get("epochs", 0),
            "state": t.state.name,
        }
        for t in study.trials
    ]
    out_path.write_text(
        json.dumps({"optimize_s": wall, "best": study.best_value, "trials": trials})
    )


def _train_trial(config: dict[str, Any], data: Mapping[str, Any], epochs: int, trial: Any) -> float:
    """A plain training loop (no state bytes, no hopping); reports accuracy each epoch."""
    import optuna
    import torch
    import torch.nn.functional as F

    from automl_core.training.optimizers import build_optimizer
    from automl_core.training.registry import build_model

    config = {"batch_size": 32, **config}
    x, y = (torch.from_numpy(a) for a in data["train"])
    xv, yv = (torch.from_numpy(a) for a in data["valid"])
    model = build_model(config, data["shape"], data["classes"])
    opt = build_optimizer(config, model.parameters())
    gen = torch.Generator().manual_seed(trial.number if trial is not None else 0)
    batch, accuracy = int(config["batch_size"]), 0.0
    if trial is not None:
        trial.set_user_attr("config", config)
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in torch.randperm(x.shape[0], generator=gen).split(batch):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            accuracy = sum(
                (model(xb).argmax(1) == yb).sum().item()
                for xb, yb in zip(xv.split(1024), yv.split(1024), strict=True)
            ) / len(yv)
        if trial is not None:
            trial.set_user_attr("epochs", epoch)  # kept when the trial is pruned below
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
    return accuracy


def run_optuna(db_url: str, tmp: Path) -> dict[str, Any]:
    """The Optuna peer in its own process: wall, peak PSS, and what it trained."""
    out = tmp / "optuna.json"
    cmd = [sys.executable, __file__, "--role", "optuna", "--db-url", db_url, "--out", str(out)]
    result: dict[str, Any] = dict(
        timed_subprocess(cmd, automl_env(db_url, tmp), tmp / "optuna.log")
    )
    result.update(json.loads(out.read_text()))
    return result


# --- pricing: one epoch per configuration, alone, one thread (--role price) ----------------------


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


def price_main(db_url: str, in_path: Path, out_path: Path, *, load: bool = False) -> None:
    """Median seconds of one epoch (train over all training rows + evaluate) per config.

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
    prices = {
        key: statistics.median(_priced_epoch(engine, key, data, PRICE_EPOCHS)) for key in configs
    }
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

    def role(name: str, out: Path) -> list[str]:
        return [sys.executable, __file__, "--role", name, "--db-url", db_url,
                "--in", str(in_path), "--out", str(out)]  # fmt: skip

    with contextlib.ExitStack() as stack:
        if beside:
            stack.enter_context(_load_beside(role("load", tmp / "load_ready"), env, tmp))
        done = timed_subprocess(role("price", out_path), env, tmp / f"price_{tag}.log")
    # The prices are the denominator of every ratio: say how busy the machine was.
    print(f"pricing ({tag}): {done['wall']:.1f} s, mean load {done['load'] or 0:.1f}", flush=True)
    return dict(json.loads(out_path.read_text()))


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
    # Internal: the subprocesses this script starts for the peer and for pricing.
    parser.add_argument(
        "--role",
        choices=("main", "optuna", "price", "load"),
        default="main",
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--in", dest="in_path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.role == "optuna":
        return optuna_main(args.db_url, args.out)
    if args.role in ("price", "load"):
        return price_main(args.db_url, args.in_path, args.out, load=args.role == "load")
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
        runs: dict[str, Any] = {"automl": run_automl(db_url, f"bench-small-cli-{tag}", tmp)}
        runs["automl"]["figures"] = experiment_figures(db_url, f"bench-small-cli-{tag}")
        print(f"automl run: {runs['automl']['wall']:.1f} s", flush=True)
        if args.free_order:
            name = f"bench-small-free-{tag}"
            runs["automl_free"] = run_automl(db_url, name, tmp, visit_order="free")
            runs["automl_free"]["figures"] = experiment_figures(db_url, name)
            print(f"automl run --visit-order free: {runs['automl_free']['wall']:.1f} s", flush=True)
        if args.airflow:
            names = {"airflow": f"bench-small-af-{tag}", "airflow_warm": f"bench-small-af2-{tag}"}
            done = run_airflow(db_url, list(names.values()), tmp, args.airflow_timeout)
            for (key, name), run in zip(names.items(), done, strict=True):
                runs[key] = {**run, "figures": experiment_figures(db_url, name)}
                print(f"{key.replace('_', ' ')} REST: {run['wall']:.1f} s", flush=True)
        if not args.no_optuna:
            runs["optuna"] = run_optuna(db_url, tmp)
            print(f"optuna: {runs['optuna']['wall']:.1f} s", flush=True)
        configs = {
            c
            for k in ("automl", "automl_free", "airflow", "airflow_warm")
            if k in runs
            for _, c, _ in runs[k]["figures"]["trained"]
        }
        configs |= {_canonical(t["config"]) for t in runs.get("optuna", {}).get("trials", [])}
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
        trained = [(_canonical(t["config"]), t["epochs"]) for t in o["trials"]]
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
