"""Short listings of trials show what sets them apart, and a run's end names failures."""

from __future__ import annotations

import pandas as pd

from automl_core.cli.commands.run import trial_summary
from automl_core.report.leaderboard import differing, format_table


def test_a_listing_shows_the_keys_that_differ() -> None:
    # Keys were sorted with architecture first and cut at 48 characters, so lr and the
    # optimizer, which decided the ranking, never showed.
    shared = {"architecture": "mlp", "batch_size": 32, "depth": 1, "dropout": 0.1}
    configs = [{**shared, "lr": 0.1}, {**shared, "lr": 0.01, "optimizer": "adam"}]
    assert differing(configs) == [{"lr": 0.1}, {"lr": 0.01, "optimizer": "adam"}]
    assert differing([shared]) == [shared]  # nothing differs: all of it
    assert differing([shared, dict(shared)]) == [shared, shared]
    board = pd.DataFrame({"trial_id": [0, 1], "status": ["completed"] * 2, "config": configs})
    table = format_table(board)
    assert "lr=0.01 optimizer=adam" in table and "batch_size" not in table


def _board(statuses: list[str], errors: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial_id": range(len(statuses)),
            "status": statuses,
            "error": errors,
            "config": [{}] * len(statuses),
        }
    )


def test_the_run_summary_names_failed_trials_and_the_first_error() -> None:
    # 6 of 17 trials failed in a review's run, and the run printed a top-10 table only.
    statuses = ["completed"] * 9 + ["stopped"] * 2 + ["failed"] * 6
    errors = [None] * 11 + ["The architecture 'cnn2d' takes\n a square number"] * 6
    line = trial_summary("hb1", _board(statuses, errors))
    assert line.startswith("17 trials: 9 completed, 2 stopped, 6 failed (trial 11: ")
    assert "The architecture 'cnn2d' takes a square number" in line
    assert line.endswith("; all: automl leaderboard hb1")
    assert trial_summary("g", _board(["completed"] * 3, [None] * 3)) == "3 trials: 3 completed"
