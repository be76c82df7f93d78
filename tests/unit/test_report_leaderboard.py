"""Printing the leaderboard: the fixed-width table and the JSON records."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from automl_core.report.leaderboard import (
    LEADERBOARD_COLUMNS,
    format_table,
    records,
    short_config,
    to_json,
)


def _board() -> pd.DataFrame:
    rows = [
        {
            "rank": 1,
            "trial_id": 12,
            "status": "completed",
            "bracket": 2,
            "batch": None,
            "rung": 1,
            "epochs": 9,
            "best_valid_accuracy": 0.93124,
            "best_epoch": 8,
            "final_valid_accuracy": 0.9,
            "final_valid_loss": 0.31234,
            "best_valid_loss": 0.3,
            "train_seconds": 12.345,
            "config": {"lr": 0.001, "architecture": "cnn2d", "batch_size": 64, "dropout": 0.25},
            "error": None,
            "created_at": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        },
        {
            "rank": 2,
            "trial_id": 3,
            "status": "failed",
            "bracket": None,
            "batch": None,
            "rung": None,
            "epochs": 0,
            "best_valid_accuracy": np.nan,
            "best_epoch": None,
            "final_valid_accuracy": np.nan,
            "final_valid_loss": np.nan,
            "best_valid_loss": np.nan,
            "train_seconds": 0.0,
            "config": {"architecture": "mlp"},
            "error": "boom",
            "created_at": datetime(2025, 3, 1, 12, 1, tzinfo=UTC),
        },
    ]
    df = pd.DataFrame(rows, columns=list(LEADERBOARD_COLUMNS))
    for col in ("rank", "trial_id", "bracket", "batch", "rung", "epochs", "best_epoch"):
        df[col] = df[col].astype("Int64")
    return df


def test_short_config_puts_architecture_first_and_cuts() -> None:
    config = {"lr": 0.001, "architecture": "cnn2d", "batch_size": 64}
    assert short_config(config) == "architecture=cnn2d batch_size=64 lr=0.001"
    cut = short_config(config, width=20)
    assert cut == "architecture=cnn2..." and len(cut) == 20
    assert short_config({}) == "" and short_config(None) == ""


def test_format_table_is_fixed_width_with_dashes_for_missing() -> None:
    text = format_table(_board(), config_width=30)
    lines = text.splitlines()
    assert lines[0].split() == [
        "rank", "trial", "status", "bracket", "rung", "epochs", "best_acc", "best_epoch",
        "final_acc", "final_loss", "time_s", "config",
    ]  # fmt: skip
    assert set(lines[1].replace(" ", "")) == {"-"}
    first, second = lines[2], lines[3]
    # best_epoch says which epoch the model (what export and predict use) is.
    assert first.split()[:11] == [
        "1", "12", "completed", "2", "1", "9", "0.9312", "8", "0.9000", "0.3123", "12.3",
    ]  # fmt: skip
    assert first.endswith("architecture=cnn2d batch_si...")
    assert second.split()[:11] == ["2", "3", "failed", "-", "-", "0", "-", "-", "-", "-", "0.0"]
    # Columns line up: each header starts where its values start (left-aligned text).
    assert lines[0].index("config") == first.index("architecture")
    assert lines[0].index("status") == first.index("completed") == second.index("failed")


def test_format_table_of_no_trials() -> None:
    empty = _board().iloc[0:0]
    assert format_table(empty).splitlines()[-1] == "(no trials)"


def test_records_are_json_ready() -> None:
    recs = records(_board())
    assert recs[0]["config"]["architecture"] == "cnn2d"
    assert recs[0]["created_at"] == "2025-03-01T12:00:00+00:00"
    assert recs[0]["batch"] is None and isinstance(recs[0]["rank"], int)
    assert recs[1]["best_valid_accuracy"] is None and recs[1]["best_epoch"] is None
    assert json.loads(to_json(_board())) == recs


def test_a_diverged_loss_is_null_in_strict_json() -> None:
    board = _board()
    loss_columns = [c for c in board.columns if "loss" in c]
    assert loss_columns
    board.loc[0, loss_columns[0]] = float("inf")
    text = to_json(board)
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)[0][loss_columns[0]] is None
