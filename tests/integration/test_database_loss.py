"""`automl run` losing its database mid-search: waits for it, or says how to resume.

The shared test server must not be stopped, so these runs use a throw-away embedded
server in a temporary project home (the product's own default database). Killed and
started again within the retry window, the run carries on and ends with exactly the
rows of an uninterrupted run; stopped for longer, the run gives up in one line naming
the command that resumes, leaves no process behind, and that command finishes the search.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from automl_core.cli import EXIT_DATABASE_LOST, main
from automl_core.embedded_server import server as embedded
from automl_core.embedded_server.server import EmbeddedServerError
from tests.integration.fault_runs import (
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
def home() -> Iterator[Path]:
    """A project home whose embedded server holds digits in 2 partitions.

    From tempfile, not tmp_path: run as root, the server runs as an unprivileged account
    that must reach the folder, and pytest's base folder is private.
    """
    base = Path(tempfile.mkdtemp(prefix="automl-dbloss-"))
    base.chmod(0o755)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.delenv("AUTOML_DB_URL", raising=False)
            patch.setenv("AUTOML_HOME", str(base))
            assert main(["db", "init"]) == 0
            assert main(["data", "load", "digits", "--table", "digits"]) == 0
            assert main(["data", "prepare", "digits", "--partitions", "2", "--seed", "0"]) == 0
            (base / "space.yaml").write_text(SPACE)
            yield base
    finally:
        embedded.stop(base)
        shutil.rmtree(base, ignore_errors=True)


def env_of(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOML_DB_URL"}
    return {**env, "AUTOML_HOME": str(home), **extra}


def server_url(home: Path) -> str:
    info = embedded.server_info(home)
    assert info is not None, "the embedded server is not running"
    return info.url


def restart(home: Path, timeout: float = 30.0) -> None:
    """Start the server again; its old backends may take a moment to let go."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            embedded.ensure_server(home)
            return
        except EmbeddedServerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def baseline(home: Path, tmp_path_factory: pytest.TempPathFactory) -> SearchOutcome:
    log = tmp_path_factory.mktemp("dbloss") / "baseline.log"
    run = Run(run_args(home / "space.yaml", "db-baseline"), env_of(home), log)
    code, output = run.wait(timeout=150)
    assert code == 0, output
    return search_outcome(server_url(home), "db-baseline")


def assert_same_search(home: Path, name: str, baseline: SearchOutcome) -> None:
    url = server_url(home)
    outcome = search_outcome(url, name)
    assert outcome.rungs == baseline.rungs
    assert outcome.metrics == baseline.metrics
    assert state_counts(url, name)["status"] == "completed"


def start_and_wait_for_epochs(home: Path, name: str, log: Path, **env: str) -> Run:
    run = Run(run_args(home / "space.yaml", name), env_of(home, **env), log)
    url = server_url(home)
    wait_for("10 epochs", lambda: epochs_recorded(url, name) >= 10, 120, run)
    run.note_children()
    return run


@pytest.mark.timeout(300)
def test_the_run_rides_out_a_database_killed_and_restarted(
    home: Path, baseline: SearchOutcome, tmp_path: Path
) -> None:
    name = "db-killed"
    run = start_and_wait_for_epochs(home, name, tmp_path / "run.log", AUTOML_DB_RETRY_S="60")
    try:
        info = embedded.server_info(home)
        assert info is not None
        os.kill(info.pid, signal.SIGKILL)
        time.sleep(3)  # the run notices and retries meanwhile
        restart(home)
        code, output = run.wait(timeout=150)
    finally:
        run.kill()
    assert code == 0, output
    assert "Traceback" not in output
    assert "lost the database connection" in output
    assert "reconnected to the database after" in output
    assert_same_search(home, name, baseline)


@pytest.mark.timeout(300)
def test_the_run_gives_up_in_one_line_and_its_command_resumes(
    home: Path, baseline: SearchOutcome, tmp_path: Path
) -> None:
    name = "db-stopped"
    run = start_and_wait_for_epochs(home, name, tmp_path / "run.log", AUTOML_DB_RETRY_S="4")
    try:
        stopped_at = time.monotonic()
        assert embedded.stop(home)
        code, output = run.wait(timeout=60)
        took = time.monotonic() - stopped_at
    finally:
        run.kill()
    assert code == EXIT_DATABASE_LOST, output
    assert took < 30, f"gave up {took:.0f} s after the server stopped"
    assert "Traceback" not in output
    line = one_line(output, "error: ")
    assert "was unreachable for" in line and "AUTOML_DB_RETRY_S=4" in line, line
    assert f"experiment {name!r} keeps every epoch it saved" in line, line
    assert not run.left_behind(), "processes left after the run gave up"

    restart(home)
    resumed = Run(resume_args(line), env_of(home), tmp_path / "resume.log")
    code, output = resumed.wait(timeout=150)
    assert code == 0, output
    assert_same_search(home, name, baseline)
