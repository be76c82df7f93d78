"""`automl run` stopped mid-search (SIGTERM, SIGINT, SIGKILL), then run again.

Each case runs the real command in its own process on the shared test server, with a
local Dask cluster of 2 workers, on a small Hyperband search (R=9, eta=3 on digits). A
signal must end it in one line that says how many epochs are saved and the command that
resumes (no traceback), with the right exit status, the experiment ``interrupted``,
nothing left running (rows or processes); a killed run must show as stale. The command
it prints must then end the search with exactly the trials, rungs and metrics of an
uninterrupted run of the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fault_runs import (
    COMMAND,
    SIGNAL_EXIT,
    SPACE,
    Run,
    epochs_recorded,
    one_line,
    resume_args,
    run_args,
    state_counts,
    wait_for,
)
from tests.search_outcome import SearchOutcome, search_outcome

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fault") / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="module")
def baseline(digits_url: str, space: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The search run once without a fault: what every stopped-and-resumed run must equal."""
    log = tmp_path_factory.mktemp("fault") / "baseline.log"
    run = Run(run_args(space, "fault-baseline"), {"AUTOML_DB_URL": digits_url}, log)
    code, output = run.wait(timeout=150)
    assert code == 0, output
    return search_outcome(digits_url, "fault-baseline")


def assert_same_search(url: str, name: str, baseline: SearchOutcome) -> None:
    outcome = search_outcome(url, name)
    assert outcome.rungs == baseline.rungs
    assert outcome.metrics == baseline.metrics
    state = state_counts(url, name)
    assert state["status"] == "completed"
    assert set(state["requests"]) == {"done"}
    assert "running" not in state["trials"] and "pending" not in state["trials"]


def resume(url: str, line: str, log: Path) -> str:
    """Run the command that ``line`` says resumes the search; returns its output."""
    run = Run(resume_args(line), {"AUTOML_DB_URL": url}, log)
    code, output = run.wait(timeout=150)
    assert code == 0, output
    assert "Traceback" not in output
    return output


@pytest.mark.timeout(420)
@pytest.mark.parametrize(
    ("signum", "fraction"),
    [(signal.SIGTERM, 0.2), (signal.SIGINT, 0.6)],
    ids=["sigterm-early", "sigint-late"],
)
def test_a_signal_stops_the_run_cleanly_and_the_printed_command_resumes_it(
    digits_url: str,
    space: Path,
    baseline: SearchOutcome,
    tmp_path: Path,
    signum: signal.Signals,
    fraction: float,
) -> None:
    name = f"fault-{signum.name.lower()}"
    at = max(1, int(len(baseline.metrics) * fraction))
    run = Run(run_args(space, name), {"AUTOML_DB_URL": digits_url}, tmp_path / "run.log")
    try:
        wait_for(f"{at} epochs", lambda: epochs_recorded(digits_url, name) >= at, 120, run)
        # Ctrl-C in a shell reaches the workers too; SIGTERM (a service manager) only the run.
        run.signal(signum, group=signum == signal.SIGINT)
        code, output = run.wait(timeout=60)
    finally:
        run.kill()
    assert run.children, "the run had no worker processes to check"
    assert not run.left_behind(), f"processes left after {signum.name}"
    assert code == SIGNAL_EXIT[signum], output
    assert "Traceback" not in output, output
    line = one_line(output, "interrupted: ")
    saved = epochs_recorded(digits_url, name)
    assert line.startswith(
        f"interrupted: experiment {name!r} stopped by {signum.name} after {saved} epochs; "
        "resume with: automl run "
    ), line
    assert at <= saved < len(baseline.metrics)
    state = state_counts(digits_url, name)
    assert state["status"] == "interrupted"
    assert "running" not in state["requests"] and "running" not in state["trials"]
    assert state["engine_stopped"] is True

    status = subprocess.run(
        [*COMMAND, "db", "status"],
        env={**os.environ, "AUTOML_DB_URL": digits_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"interrupted: experiment {name!r} was stopped; to resume it," in status.stdout

    resume(digits_url, line, tmp_path / "resume.log")
    assert_same_search(digits_url, name, baseline)


@pytest.mark.timeout(420)
def test_a_killed_run_shows_as_stale_and_its_rerun_resumes_it(
    digits_url: str, space: Path, baseline: SearchOutcome, tmp_path: Path
) -> None:
    name = "fault-sigkill"
    at = len(baseline.metrics) // 3
    run = Run(run_args(space, name), {"AUTOML_DB_URL": digits_url}, tmp_path / "run.log")
    try:
        wait_for(f"{at} epochs", lambda: epochs_recorded(digits_url, name) >= at, 120, run)
        run.signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        run.kill()  # its workers too: a SIGKILLed parent cannot stop them
    assert state_counts(digits_url, name)["status"] == "running"

    env = {**os.environ, "AUTOML_DB_URL": digits_url}
    status = subprocess.run(
        [*COMMAND, "db", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    (stale,) = [
        line
        for line in status.stdout.splitlines()
        if line.startswith("stale:") and repr(name) in line
    ]
    assert f"experiment {name!r} is marked running but its engine (pid {run.proc.pid}" in stale
    assert f"rerun `automl run ... --name {name}`" in stale
    board = subprocess.run(
        [*COMMAND, "leaderboard", name], env=env, capture_output=True, text=True, timeout=60
    )
    assert board.returncode == 0, board.stderr
    assert f"experiment {name!r} is stale" in board.stderr
    # A watch ends instead of waiting for a search nothing will resume.
    watch = subprocess.run(
        [*COMMAND, "watch", name], env=env, capture_output=True, text=True, timeout=60
    )
    assert watch.returncode == 4, watch.stdout + watch.stderr
    assert f"experiment {name}: its engine (pid {run.proc.pid}" in watch.stdout

    rerun = Run(run_args(space, name), {"AUTOML_DB_URL": digits_url}, tmp_path / "rerun.log")
    code, output = rerun.wait(timeout=150)
    assert code == 0, output
    assert_same_search(digits_url, name, baseline)
