"""Helpers of the fault suite: `automl run` in its own process, watched from the test.

Every wait has a deadline; a run that hangs fails the test with its output.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg2

from automl_core.config import repository_root

# A small Hyperband search on digits: 17 trials, 69 epochs, about 10 s on 2 workers.
SPACE = """\
architecture: mlp
hidden: [32, 64]
depth: 1
optimizer: sgd
lr: {loguniform: [0.02, 0.1]}
batch_size: 64
"""
COMMAND = [str(Path(sys.executable).with_name("automl"))]  # the installed command


def run_args(space: Path, name: str) -> list[str]:
    """The arguments of `automl run` for the suite's search (after the program name)."""
    return [
        "run", "--data", "digits", "--space", str(space), "--method", "hyperband",
        "--R", "9", "--eta", "3", "--seed", "3", "--no-progress", "--name", name,
    ]  # fmt: skip


def create_suite_experiment(url: str, name: str, tmp_path: Path) -> None:
    """The suite's search (``run_args``: SPACE, Hyperband R=9 eta=3, seed 3) created as
    experiment ``name``, not yet trained, for tests that drive its engine themselves."""
    from automl_core.experiment import SearchRequest, create_experiment
    from automl_core.space import SearchSpace

    (tmp_path / "space.yaml").write_text(SPACE)
    space = SearchSpace.from_file(tmp_path / "space.yaml").to_dict()
    request = SearchRequest(
        dataset="digits", space=space, method="hyperband", name=name, seed=3, R=9, eta=3
    )
    create_experiment(request, db_url=url)


class Run:
    """One `automl` process; its output goes to a file (a pipe could fill and block it)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [*COMMAND, *args],
            cwd=repository_root(),
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell job has
        )
        self.children: list[psutil.Process] = []

    def note_children(self) -> None:
        """Remember the processes it started (the Dask workers), to check they end."""
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        known = {p.pid for p in self.children}
        self.children += [p for p in found if p.pid not in known]

    def signal(self, signum: int, *, group: bool = False) -> None:
        """Send ``signum`` to it, or to its whole process group as Ctrl-C in a shell does."""
        self.note_children()
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def wait(self, timeout: float) -> tuple[int, str]:
        """Exit status and output; kills it (and fails) when it runs past ``timeout``."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"automl ran past {timeout} s:\n{self.output()}") from None
        self._out.close()
        return code, self.output()

    def output(self) -> str:
        return self.log.read_text()

    def left_behind(self, timeout: float = 15.0) -> list[psutil.Process]:
        """Its child processes still alive ``timeout`` seconds after it ended."""
        _, alive = psutil.wait_procs(self.children, timeout=timeout)
        return alive

    def kill(self) -> None:
        """SIGKILL it and every process it started (a test's last resort)."""
        self.note_children()
        for proc in self.children:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        psutil.wait_procs(self.children, timeout=10)
        self._out.close()


def epochs_recorded(url: str, experiment: str) -> int:
    """Epoch rows of the experiment; 0 when the schema, the experiment or the server is not there."""
    try:
        conn = psycopg2.connect(url, connect_timeout=5)
    except psycopg2.OperationalError:
        return 0
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('automl.trial_epochs') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0
            cur.execute(
                "SELECT count(*) FROM automl.trial_epochs te JOIN automl.experiments e "
                "ON e.id = te.experiment_id WHERE e.name = %s",
                (experiment,),
            )
            return int(cur.fetchone()[0])
    except psycopg2.Error:
        return 0
    finally:
        conn.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float, run: Run | None = None) -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(f"{what}: automl ended first:\n{run.output()}")
        time.sleep(0.05)
    raise AssertionError(f"{what}: not reached after {timeout} s")


def one_line(output: str, prefix: str) -> str:
    """The single output line that starts with ``prefix`` (fails unless exactly one)."""
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"expected one line starting {prefix!r}:\n{output}"
    return lines[0]


def resume_args(line: str) -> list[str]:
    """The arguments of the command a message says to resume with."""
    command = shlex.split(line.split("resume with: ", 1)[1])
    assert command[0] == "automl", line
    return command[1:]


def state_counts(url: str, experiment: str) -> dict[str, Any]:
    """The experiment's status and how many of its requests and trials are in each state."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, status FROM automl.experiments WHERE name = %s", (experiment,))
            exp_id, status = cur.fetchone()
            cur.execute(
                "SELECT state, count(*) FROM automl.training_requests "
                "WHERE experiment_id = %s GROUP BY state",
                (exp_id,),
            )
            requests = dict(cur.fetchall())
            cur.execute(
                "SELECT status, count(*) FROM automl.trials WHERE experiment_id = %s "
                "GROUP BY status",
                (exp_id,),
            )
            trials = dict(cur.fetchall())
            cur.execute(
                "SELECT stopped_at IS NOT NULL FROM automl.engines WHERE experiment_id = %s",
                (exp_id,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return {
        "status": status,
        "requests": requests,
        "trials": trials,
        "engine_stopped": row[0] if row else None,
    }


SIGNAL_EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}
