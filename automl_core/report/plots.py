"""The report's plots, drawn from DataFrames into PNG files.

Each ``plot_*`` function takes the DataFrames of ``automl_core.report.leaderboard``,
writes one PNG and returns its path, or returns ``None`` without writing when there is
nothing to draw (e.g. no trial has a validation result yet), so the page can say so.
Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly: no
pyplot, so no global figure state and no display backend, whatever the environment.

The numbers behind the plots (best-so-far curves, busy workers, utilisation) are
small pure functions, tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from automl_core.artifacts import replace_file

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_HIGHLIGHT = "tab:orange"
_MUTED = "0.65"


# --- the numbers -----------------------------------------------------------------------


def best_so_far(values: Sequence[float | None]) -> np.ndarray:
    """Running maximum that ignores missing values (NaN until the first real value)."""
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    filled = np.where(np.isnan(arr), -np.inf, arr)
    running = np.maximum.accumulate(filled) if arr.size else arr
    return np.where(np.isneginf(running), np.nan, running)


@dataclass(frozen=True)
class Utilisation:
    """``value = busy_seconds / (workers * wall_seconds)`` over the experiment's jobs.

    ``workers`` is the fewer of the partitions and the worker addresses in the job log:
    each partition is pinned to one worker at a time, so a run has at most one worker
    per partition (a restarted engine's workers have new addresses, which alone would
    count twice), and a run with fewer workers (``--workers 1``) shows as many
    addresses as it had.
    """

    workers: int
    wall_seconds: float
    busy_seconds: float

    @property
    def value(self) -> float:
        capacity = self.workers * self.wall_seconds
        return self.busy_seconds / capacity if capacity > 0 else 0.0


def utilisation(jobs: pd.DataFrame) -> Utilisation | None:
    """Utilisation from finished jobs (``partition``, ``worker``, ``started_at``,
    ``ended_at``); None if none."""
    if jobs.empty:
        return None
    start = float(jobs["started_at"].min())
    end = float(jobs["ended_at"].max())
    busy = float((jobs["ended_at"] - jobs["started_at"]).clip(lower=0).sum())
    workers = min(int(jobs["partition"].nunique()), int(jobs["worker"].nunique()))
    return Utilisation(workers, max(end - start, 0.0), busy)


def busy_workers(jobs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The step function of busy workers: ``(times, counts)``, count holding from each time.

    Times are seconds since the first job started. At equal times a job's end is counted
    before another's start, so a hand-over does not show as two busy workers.
    """
    if jobs.empty:
        return np.zeros(0), np.zeros(0, dtype=int)
    t0 = float(jobs["started_at"].min())
    starts = jobs["started_at"].to_numpy(dtype=float) - t0
    ends = jobs["ended_at"].to_numpy(dtype=float) - t0
    times = np.concatenate([ends, starts])
    deltas = np.concatenate([-np.ones(len(ends), int), np.ones(len(starts), int)])
    order = np.lexsort((deltas, times))  # by time, then -1 before +1
    times, counts = times[order], np.cumsum(deltas[order])
    # Keep the last count at each distinct time.
    last = np.r_[times[1:] != times[:-1], True]
    return times[last], counts[last]


# --- drawing ---------------------------------------------------------------------------


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_png(fig: Figure, path: Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (through ``replace_file``) and return ``path``."""
    return replace_file(path, lambda fh: fig.savefig(fh, format="png"))


def accuracy_axis(ax: Axes) -> None:
    ax.set_ylabel("validation accuracy")
    ax.grid(True, alpha=0.3)


def plot_accuracy_histogram(board: pd.DataFrame, path: Path) -> Path | None:
    """Histogram of the final validation accuracy of every trial that has one."""
    values = board["final_valid_accuracy"].dropna().to_numpy(dtype=float)
    if values.size == 0:
        return None
    fig = new_figure(6.4, 3.6)
    ax = fig.subplots()
    bins = min(20, max(5, int(np.sqrt(values.size)) * 2))
    lo, hi = float(values.min()), float(values.max())
    span = (lo - 0.01, hi + 0.01) if hi - lo < 0.02 else (lo, hi)
    ax.hist(values, bins=bins, range=span, color="tab:blue", edgecolor="white")
    best = float(board["final_valid_accuracy"].max())
    ax.axvline(best, color=_HIGHLIGHT, linestyle="--", label=f"best {best:.4f}")
    missing = len(board) - values.size
    note = f" ({missing} without a result)" if missing else ""
    ax.set_title(f"Final validation accuracy of {values.size} trials{note}")
    ax.set_xlabel("final validation accuracy")
    ax.set_ylabel("trials")
    ax.legend(loc="upper left")
    return save_png(fig, path)


def plot_best_by_trial(board: pd.DataFrame, path: Path) -> Path | None:
    """Each trial's best validation accuracy, and the best so far, in creation order."""
    ordered = board.sort_values(["created_at", "trial_id"], kind="stable")
    acc = ordered["best_valid_accuracy"].to_numpy(dtype=float)
    if np.isnan(acc).all():
        return None
    x = np.arange(1, len(acc) + 1)
    fig = new_figure(6.4, 3.6)
    ax = fig.subplots()
    ax.scatter(x, acc, s=14, color=_MUTED, label="trial's best", zorder=2)
    best = best_so_far(acc.tolist())
    # A step holds each value until the next point: one more point carries the last
    # value to the edge, so the best so far shows even for a single trial.
    ax.step(
        np.r_[x, x[-1] + 0.5],
        np.r_[best, best[-1]],
        where="post",
        color=_HIGHLIGHT,
        lw=2,
        label="best so far",
        zorder=3,
    )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0.5, len(acc) + 0.5)
    ax.set_xlabel("trials, in creation order")
    ax.set_title("Best validation accuracy so far, by trial")
    accuracy_axis(ax)
    ax.legend(loc="best")
    return save_png(fig, path)


def time_unit(span_seconds: float) -> tuple[str, float]:
    """A readable unit for a time axis spanning ``span_seconds``: (name, seconds per unit)."""
    if span_seconds < 120:
        return "seconds", 1.0
    if span_seconds < 120 * 60:
        return "minutes", 60.0
    return "hours", 3600.0


def plot_best_by_time(epochs: pd.DataFrame, start: Any, path: Path) -> Path | None:
    """Best validation accuracy so far against the time since ``start`` (a datetime).

    Each recorded epoch is a point in time at which a result became known.
    """
    import pandas as pd

    rows = epochs.dropna(subset=["valid_accuracy", "recorded_at"])
    if rows.empty:
        return None
    when = pd.to_datetime(rows["recorded_at"], utc=True)
    origin = pd.Timestamp(start)
    origin = origin.tz_localize("UTC") if origin.tzinfo is None else origin
    seconds = (when - origin).dt.total_seconds().to_numpy(dtype=float)
    unit, per_unit = time_unit(float(seconds.max()))
    order = np.argsort(seconds, kind="stable")
    elapsed = seconds[order] / per_unit
    acc = rows["valid_accuracy"].to_numpy(dtype=float)[order]
    fig = new_figure(6.4, 3.6)
    ax = fig.subplots()
    ax.scatter(elapsed, acc, s=10, color=_MUTED, label="epoch result", zorder=2)
    right = max(float(elapsed.max()), 1e-9) * 1.04
    best = best_so_far(acc.tolist())
    ax.step(  # carried to the right edge, as in plot_best_by_trial
        np.r_[0.0, elapsed, right],
        np.r_[np.nan, best, best[-1]],
        where="post",
        color=_HIGHLIGHT,
        lw=2,
        label="best so far",
        zorder=3,
    )
    ax.set_xlim(0, right)
    ax.set_xlabel(f"{unit} since the experiment started")
    ax.set_title("Best validation accuracy so far, by wall time")
    accuracy_axis(ax)
    ax.legend(loc="best")
    return save_png(fig, path)


def plot_hyperband_rungs(rungs: pd.DataFrame, path: Path) -> Path | None:
    """Per bracket: each trial's accuracy at each rung it entered, survivors highlighted.

    A line is one trial; a filled orange point is a trial promoted from that rung, a
    hollow grey point one stopped there; trials that reached the bracket's last rung are
    drawn in colour and labelled.
    """
    data = rungs.dropna(subset=["metric"])
    if data.empty:
        return None
    brackets = sorted(int(b) for b in data["bracket"].unique())
    fig = new_figure(max(5.0, 3.2 * len(brackets)), 4.0)
    axes = np.atleast_1d(fig.subplots(1, len(brackets), sharey=True, squeeze=False)[0])
    for ax, bracket in zip(axes, brackets, strict=True):
        part = data[data["bracket"] == bracket]
        top = int(rungs.loc[rungs["bracket"] == bracket, "rung"].max())
        for trial_id, trial in part.groupby("trial_id"):
            trial = trial.sort_values("rung")
            finalist = int(trial["rung"].max()) == top and top > 0
            ax.plot(
                trial["rung"],
                trial["metric"],
                color=_HIGHLIGHT if finalist else _MUTED,
                lw=1.5 if finalist else 0.8,
                zorder=3 if finalist else 1,
            )
            rung_no = trial["rung"].to_numpy()
            promoted = trial["promoted"].eq(True).to_numpy()
            last = rung_no == top
            stopped = ~promoted & ~last
            ax.scatter(
                rung_no[promoted], trial["metric"][promoted], s=28, color=_HIGHLIGHT, zorder=4
            )
            ax.scatter(
                rung_no[last],
                trial["metric"][last],
                s=90,
                marker="*",
                color=_HIGHLIGHT,
                edgecolors="black",
                linewidths=0.5,
                zorder=5,
            )
            ax.scatter(
                rung_no[stopped],
                trial["metric"][stopped],
                s=22,
                facecolors="none",
                edgecolors="0.4",
                zorder=2,
            )
            if finalist:
                last = trial.iloc[-1]
                ax.annotate(
                    f"#{trial_id}",
                    (last["rung"], last["metric"]),
                    fontsize=7,
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                )
        in_bracket = rungs[rungs["bracket"] == bracket]
        ticks = sorted(int(r) for r in in_bracket["rung"].unique())
        epochs = in_bracket.groupby("rung")["target_epochs"].max().to_dict()
        ax.set_xticks(ticks, [f"{r}\n({epochs.get(r, '?')} ep)" for r in ticks])
        ax.set_xlim(min(ticks) - 0.3, max(ticks) + 0.6)
        n0 = int((in_bracket["rung"] == min(ticks)).sum())
        ax.set_title(f"bracket {bracket} ({n0} trials)")
        ax.set_xlabel("rung (epochs)")
        ax.grid(True, alpha=0.3)
    accuracy_axis(axes[0])
    fig.suptitle(
        "Hyperband: validation accuracy at each rung\n"
        "dot: promoted, star: reached the last rung, hollow: stopped",
        fontsize=10,
    )
    return save_png(fig, path)


def plot_learning_curves(
    epochs: pd.DataFrame, trial_ids: Sequence[int], path: Path, *, labels: Sequence[str] = ()
) -> Path | None:
    """Validation accuracy per epoch of the given trials (the leaderboard's top ones)."""
    wanted = [int(t) for t in trial_ids]
    data = epochs[epochs["trial_id"].isin(wanted)].dropna(subset=["valid_accuracy"])
    if data.empty:
        return None
    fig = new_figure(6.4, 3.8)
    ax = fig.subplots()
    names = dict(zip(wanted, labels, strict=False))
    for trial_id in wanted:
        curve = data[data["trial_id"] == trial_id].sort_values("epoch")
        if curve.empty:
            continue
        ax.plot(
            curve["epoch"],
            curve["valid_accuracy"],
            marker="o",
            ms=3,
            label=names.get(trial_id, f"trial {trial_id}"),
        )
    ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Learning curves of the top {len(wanted)} trials")
    accuracy_axis(ax)
    ax.legend(loc="best", fontsize=7)
    return save_png(fig, path)


def plot_worker_timeline(jobs: pd.DataFrame, path: Path) -> Path | None:
    """Which trial each worker slot ran over time, and the number of busy workers."""
    usage = utilisation(jobs)
    if usage is None:
        return None
    t0 = float(jobs["started_at"].min())
    fig = new_figure(7.2, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    partitions = sorted(int(p) for p in jobs["partition"].unique())
    for row, partition in enumerate(partitions):
        part = jobs[jobs["partition"] == partition]
        ends = part["ended_at"].to_numpy(dtype=float)
        begins = part["started_at"].to_numpy(dtype=float)
        spans = [(b - t0, max(e - b, 0.0)) for b, e in zip(begins, ends, strict=True)]
        colors = [cmap(int(t) % 10) for t in part["trial_id"]]
        top.broken_barh(spans, (row - 0.4, 0.8), facecolors=colors, edgecolor="white", lw=0.3)
    top.set_yticks(range(len(partitions)), [f"partition {p}" for p in partitions])
    trial_ids = sorted(int(t) for t in jobs["trial_id"].unique())
    if len(trial_ids) <= 10:  # beyond that the colours repeat and a legend would mislead
        from matplotlib.patches import Patch

        handles = [Patch(color=cmap(t % 10), label=f"trial {t}") for t in trial_ids]
        top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    repeat = "" if len(trial_ids) <= 10 else ", 10 colours in turn"
    top.set_title(f"Worker timeline (one colour per trial{repeat})")
    times, counts = busy_workers(jobs)
    # A filled step: with thousands of short gaps a line would be an unreadable comb.
    bottom.fill_between(
        np.r_[0.0, times], np.r_[0, counts], step="post", color="tab:blue", alpha=0.35, lw=0
    )
    bottom.axhline(usage.workers, color=_MUTED, linestyle="--", lw=1)
    bottom.set_ylim(0, usage.workers + 0.5)
    bottom.set_ylabel("busy workers")
    bottom.set_xlabel("seconds since the first job started")
    bottom.set_title(
        f"Utilisation {usage.value:.0%} = {usage.busy_seconds:.1f} busy worker-s / "
        f"({usage.workers} workers x {usage.wall_seconds:.1f} s)"
    )
    bottom.grid(True, alpha=0.3)
    return save_png(fig, path)
