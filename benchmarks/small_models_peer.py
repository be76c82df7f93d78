"""The peer of the many-small-models benchmark: Optuna on the same search.

TPESampler + HyperbandPruner(1, 27, 3), 49 trials on 2 threads, one torch thread each,
with plain training loops over the same packed rows and the same models. Run by
``bench_small_models.py`` as a subprocess of its own (this file's ``main``), so that its
wall time includes its start-up as ``automl run``'s does. Optuna is a benchmark-only
extra: ``.venv/bin/pip install -c constraints.txt -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from small_models_common import (
    ETA,
    N_TRIALS,
    SEED,
    SPACE,
    WORKERS,
    R,
    automl_env,
    load_arrays,
    timed_subprocess,
)


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
    cmd = [sys.executable, __file__, "--db-url", db_url, "--out", str(out)]
    result: dict[str, Any] = dict(
        timed_subprocess(cmd, automl_env(db_url, tmp), tmp / "optuna.log")
    )
    result.update(json.loads(out.read_text()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The Optuna peer (started by bench_small_models.py)"
    )
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    optuna_main(args.db_url, args.out)


if __name__ == "__main__":
    main()
