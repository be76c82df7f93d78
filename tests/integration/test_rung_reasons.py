"""A rung's recorded reason says what happened: a bracket's last rung promotes nobody
because nothing follows it, and said "top 0 of 3 by validation accuracy" before."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from automl_core.cli import main
from automl_core.report.leaderboard import rung_results
from automl_core.store.connection import connect


def test_the_last_rung_of_each_bracket_says_its_trials_completed(
    digits_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOML_DB_URL", digits_url)
    space = tmp_path / "space.yaml"
    space.write_text(
        yaml.safe_dump(
            {"architecture": "mlp", "hidden": [8, 16, 32, 64], "lr": {"loguniform": [0.01, 0.1]}}
        )
    )
    argv = ["run", "--data", "digits", "--space", str(space), "--method", "hyperband"]
    assert main([*argv, "--R", "3", "--eta", "3", "--name", "rung-reasons", "--no-progress"]) == 0
    conn = connect(digits_url)
    try:
        rungs = rung_results(conn, "rung-reasons")
    finally:
        conn.close()
    last = rungs.groupby("bracket")["rung"].transform("max") == rungs["rung"]
    assert set(rungs[last]["reason"]) == {"last rung of its bracket: completed"}
    assert not rungs[last]["promoted"].any()
    earlier = rungs[~last]
    assert len(earlier) and all(r.startswith("top ") for r in earlier["reason"])
    assert earlier["promoted"].any()
