"""The report's hyperparameter view: each trial's best validation accuracy against the
value of each hyperparameter that varies (Optuna's ``plot_slice``, one panel per key).

Numbers are placed on their axis (a logarithmic one when they are positive and span more
than a factor of 20, as learning rates do); other values (architectures, optimisers, and
a few distinct integers, such as depths) on one column each, spread a little so that trials
with equal values do not hide each other. Trials without a validation result are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl_core.report.plots import accuracy_axis, new_figure, save_png

#: Panels at most (the keys that vary most widely across trials first).
MAX_PANELS = 9
_COLUMNS = 3


def varying_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Keys with more than one distinct value among ``configs``, those set in the most
    trials first (then by name): a conditional key (``momentum``, SGD's only) comes after
    the keys every trial has."""
    keys = {k for c in configs for k in c}
    counts = {k: sum(k in c for c in configs) for k in keys}
    varying = [k for k in keys if len({repr(c.get(k)) for c in configs if k in c}) > 1]
    return sorted(varying, key=lambda k: (-counts[k], k))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def plot_hyperparameters(board: pd.DataFrame, path: Path) -> Path | None:
    """One scatter per varying hyperparameter (at most ``MAX_PANELS``): its value (x)
    against the trial's best validation accuracy (y). None when no trial has a result or
    no key varies."""
    rated = board.dropna(subset=["best_valid_accuracy"])
    configs = [dict(c or {}) for c in rated["config"]]
    keys = varying_keys(configs)[:MAX_PANELS]
    if not keys:
        return None
    accuracy = rated["best_valid_accuracy"].to_numpy(dtype=float)
    rows = math.ceil(len(keys) / _COLUMNS)
    columns = min(len(keys), _COLUMNS)
    fig = new_figure(3.0 * columns + 0.6, 2.6 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, columns, sharey=True, squeeze=False).ravel())
    jitter = np.random.default_rng(0)  # fixed: the same report twice draws the same picture
    for ax, key in zip(axes, keys, strict=False):
        has = [i for i, c in enumerate(configs) if key in c]
        values = [configs[i][key] for i in has]
        y = accuracy[has]
        few_integers = all(isinstance(v, int) for v in values) and len(set(values)) <= 6
        if all(_is_number(v) for v in values) and not few_integers:
            x = np.asarray(values, dtype=float)
            ax.scatter(x, y, s=14, alpha=0.7)
            if x.min() > 0 and x.max() / x.min() > 20:
                ax.set_xscale("log")
        else:
            # Sorted as values (batch sizes 32 < 128), shown as text.
            labels = [str(v) for v in sorted(set(values), key=lambda v: (str(type(v)), v))]
            where = {label: i for i, label in enumerate(labels)}
            x = np.array([where[str(v)] for v in values], dtype=float)
            ax.scatter(x + jitter.uniform(-0.15, 0.15, x.size), y, s=14, alpha=0.7)
            ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0)
        ax.set_xlabel(f"{key} ({len(has)} trials)" if len(has) < len(configs) else key)
        accuracy_axis(ax)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle(f"Best validation accuracy by hyperparameter value ({len(configs)} trials)")
    return save_png(fig, path)
