"""The numbers behind the report's plots, and that each plot writes a real PNG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from automl_core.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _jobs(rows: list[tuple[int, int, float, float]]) -> pd.DataFrame:
    """(trial_id, partition, started_at, ended_at) rows as a job log."""
    return pd.DataFrame(
        [
            {
                "trial_id": t,
                "epoch": 1,
                "partition": p,
                "kind": "train",
                "worker": f"w{p}",
                "started_at": s,
                "ended_at": e,
            }
            for t, p, s, e in rows
        ]
    )


def test_best_so_far_skips_missing() -> None:
    got = plots.best_so_far([None, 0.2, None, 0.1, 0.5, 0.4])
    assert np.isnan(got[0])
    assert got[1:].tolist() == [0.2, 0.2, 0.2, 0.5, 0.5]
    assert plots.best_so_far([]).size == 0


@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), max_size=30))
def test_best_so_far_is_running_max(values: list[float | None]) -> None:
    got = plots.best_so_far(values)
    seen: list[float] = []
    for v, g in zip(values, got, strict=True):
        if v is not None:
            seen.append(v)
        assert (np.isnan(g) and not seen) or g == max(seen)


def test_utilisation_counts_a_partitions_worker_once_across_engine_restarts() -> None:
    # Two partitions over 10 s; partition 0 busy 0-10, partition 1 busy 0-4 and 6-10.
    # The worker names change halfway (a new cluster), the slots do not.
    jobs = _jobs([(1, 0, 100.0, 110.0), (2, 1, 100.0, 104.0), (3, 1, 106.0, 110.0)])
    jobs.loc[2, "worker"] = "tcp://new:1"
    usage = plots.utilisation(jobs)
    assert usage is not None
    assert (usage.workers, usage.wall_seconds, usage.busy_seconds) == (2, 10.0, 18.0)
    assert usage.value == pytest.approx(0.9)
    assert plots.utilisation(_jobs([])) is None


def test_one_worker_over_two_partitions_counts_one() -> None:
    # `--workers 1`: one worker runs both partitions back to back, busy all the time.
    jobs = _jobs([(1, 0, 0.0, 2.0), (1, 1, 2.0, 4.0), (2, 0, 4.0, 6.0), (2, 1, 6.0, 8.0)])
    jobs["worker"] = "tcp://only:1"
    usage = plots.utilisation(jobs)
    assert usage is not None and usage.workers == 1
    assert usage.value == pytest.approx(1.0)


def test_busy_workers_step_function() -> None:
    jobs = _jobs([(1, 0, 0.0, 4.0), (2, 1, 1.0, 2.0), (3, 1, 2.0, 3.0), (4, 0, 4.0, 5.0)])
    times, counts = plots.busy_workers(jobs)
    # A hand-over at the same instant (t=2 on partition 1, t=4 on partition 0) stays flat.
    assert times.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert counts.tolist() == [1, 2, 2, 1, 1, 0]


def _board() -> pd.DataFrame:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    return pd.DataFrame(
        {
            "trial_id": [3, 1, 2, 4],
            "final_valid_accuracy": [0.9, 0.5, np.nan, 0.7],
            "best_valid_accuracy": [0.92, 0.6, np.nan, 0.7],
            "created_at": [t0 + timedelta(seconds=s) for s in (3, 1, 2, 4)],
        }
    )


def _epochs() -> pd.DataFrame:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for trial, accs in {1: [0.4, 0.6], 3: [0.7, 0.92, 0.9], 4: [0.7]}.items():
        for e, a in enumerate(accs, start=1):
            rows.append(
                {
                    "trial_id": trial,
                    "epoch": e,
                    "valid_accuracy": a,
                    "recorded_at": t0 + timedelta(minutes=trial + e),
                }
            )
    return pd.DataFrame(rows)


def _rungs() -> pd.DataFrame:
    rows = [
        (1, 0, 1, 1, 0.5, True),
        (1, 0, 2, 1, 0.3, False),
        (1, 0, 3, 1, 0.4, False),
        (1, 1, 1, 3, 0.8, None),
        (0, 0, 4, 3, 0.6, None),
    ]
    return pd.DataFrame(
        [
            dict(
                zip(
                    ("bracket", "rung", "trial_id", "target_epochs", "metric", "promoted"),
                    r,
                    strict=True,
                ),
                reason="",
            )
            for r in rows
        ]
    )


def test_each_plot_writes_a_png(tmp_path: Path) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    written = [
        plots.plot_accuracy_histogram(_board(), tmp_path / "hist.png"),
        plots.plot_best_by_trial(_board(), tmp_path / "by_trial.png"),
        plots.plot_best_by_time(_epochs(), start, tmp_path / "by_time.png"),
        plots.plot_hyperband_rungs(_rungs(), tmp_path / "rungs.png"),
        plots.plot_learning_curves(_epochs(), [3, 4], tmp_path / "curves.png", labels=["a", "b"]),
        plots.plot_worker_timeline(
            _jobs([(1, 0, 0.0, 4.0), (2, 1, 1.0, 2.0)]), tmp_path / "workers.png"
        ),
    ]
    for path in written:
        assert path is not None
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_plots_with_nothing_to_draw_write_nothing(tmp_path: Path) -> None:
    board = _board().assign(final_valid_accuracy=np.nan, best_valid_accuracy=np.nan)
    no_epochs = _epochs().iloc[0:0]
    assert plots.plot_accuracy_histogram(board, tmp_path / "a.png") is None
    assert plots.plot_best_by_trial(board, tmp_path / "b.png") is None
    assert plots.plot_best_by_time(no_epochs, datetime.now(UTC), tmp_path / "c.png") is None
    assert plots.plot_hyperband_rungs(_rungs().iloc[0:0], tmp_path / "d.png") is None
    assert plots.plot_learning_curves(_epochs(), [99], tmp_path / "e.png") is None
    assert plots.plot_worker_timeline(_jobs([]), tmp_path / "f.png") is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("span", "unit"), [(0.5, "seconds"), (119, "seconds"), (120, "minutes"), (7300, "hours")]
)
def test_time_unit(span: float, unit: str) -> None:
    name, per_unit = plots.time_unit(span)
    assert name == unit and span / per_unit < 120


def test_the_best_so_far_line_shows_for_a_single_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A step holds a value until the next point, so with one point nothing was drawn.
    figures: list[Any] = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig) or Path(path))
    one_epoch = _epochs().iloc[0:1]
    plots.plot_best_by_trial(_board().iloc[0:1], tmp_path / "a.png")
    plots.plot_best_by_time(one_epoch, datetime(2025, 1, 1, tzinfo=UTC), tmp_path / "b.png")
    for fig in figures:
        (line,) = fig.axes[0].get_lines()
        x, y = line.get_xdata(), line.get_ydata()
        shown = ~np.isnan(np.asarray(y, dtype=float))
        assert np.ptp(np.asarray(x, dtype=float)[shown]) > 0  # a segment, not a point
