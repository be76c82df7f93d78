"""One engine trains an experiment at a time; an engine that cannot start leaves it resumable.

Before, a second ``automl run --name X`` took the lease of a running first one, put its
running requests back in the queue and idled for ten minutes once the first had finished
the search; and an unreachable ``--cluster`` printed a traceback and left the experiment
``running`` with a lease no engine held.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from automl_core.cli import main
from automl_core.errors import UserInputError
from automl_core.store import repository as repo
from automl_core.store.connection import connect

DEADLINE_S = 30.0
RUN = ["run", "--data", "digits", "--space", "examples/spaces/digits.yaml", "--method"]


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process of this host that outlives the test's checks (an engine's stand-in)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait(timeout=DEADLINE_S)


@pytest.fixture
def on_digits(digits_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AUTOML_DB_URL", digits_url)
    return digits_url


def experiment_id(conn: Any, name: str) -> int:
    return repo.get_experiment(conn, name).id


def test_a_live_engine_keeps_its_lease_until_it_is_gone(
    on_digits: str,
    live_process: subprocess.Popen[bytes],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from automl_core.experiment import lease as lease_module

    monkeypatch.setattr(lease_module, "EXIT_WAIT_S", 1.0)  # the holder never exits here
    argv = [*RUN, "random", "--n", "2", "--epochs", "1", "--name", "lease-held"]
    conn = connect(on_digits)
    try:
        assert main(argv) == 0  # the experiment and its stopped lease
        exp = experiment_id(conn, "lease-held")
        host = socket.gethostname()
        assert repo.start_engine(conn, exp, host=host, pid=live_process.pid) == 2
        capsys.readouterr()

        # A second engine (this test's process) is refused, cleanly, and changes nothing.
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"Another engine (pid {live_process.pid} on {host}" in err
        assert "Traceback" not in err
        lease = repo.get_engine(conn, exp)
        assert lease is not None and (lease.pid, lease.starts) == (live_process.pid, 2)

        # The same process may take its own lease again; once it is gone, anyone may.
        assert repo.start_engine(conn, exp, host=host, pid=live_process.pid) == 3
        live_process.kill()
        live_process.wait(timeout=DEADLINE_S)
        assert main(argv) == 0
        lease = repo.get_engine(conn, exp)
        assert lease is not None and lease.stopped and lease.starts == 4
    finally:
        conn.close()


def test_a_stopped_lease_is_taken_whoever_held_it(
    on_digits: str, live_process: subprocess.Popen[bytes]
) -> None:
    conn = connect(on_digits)
    try:
        assert main([*RUN, "random", "--n", "1", "--epochs", "1", "--name", "lease-st"]) == 0
        exp = experiment_id(conn, "lease-st")
        repo.start_engine(conn, exp, host=socket.gethostname(), pid=live_process.pid)
        repo.stop_engine(conn, exp)
        assert repo.start_engine(conn, exp, host="elsewhere", pid=1) == 3
    finally:
        conn.close()


def test_an_unreachable_cluster_is_a_clear_error_and_the_experiment_can_resume(
    on_digits: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from automl_core.executors import scheduler_probe
    from automl_core.experiment.api import create_experiment
    from automl_core.experiment.driver import run_engine
    from automl_core.experiment.request import SearchRequest

    monkeypatch.setattr(scheduler_probe, "PROBE_TIMEOUT_S", 2.0)
    argv = [*RUN, "random", "--n", "1", "--epochs", "1", "--name", "no-cluster"]
    # `automl run` asks the address first: refused before the experiment exists.
    code = main([*argv, "--cluster", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert "tcp://127.0.0.1:9" in err and "--cluster" in err
    conn = connect(on_digits)
    try:
        assert "no-cluster" not in {e.name for e in repo.list_experiments(conn)}
        # An engine of an existing experiment (a DAG's engine task) whose cluster is
        # gone: the experiment is left interrupted, its lease stopped, to resume.
        space = {"architecture": "mlp", "hidden": 16, "batch_size": 64}
        request = SearchRequest(
            dataset="digits", space=space, method="random", name="no-cluster", n=1,
            epochs=1,
        )  # fmt: skip
        create_experiment(request, db_url=on_digits)
        with pytest.raises(UserInputError, match=r"tcp://127\.0\.0\.1:9 could not be used"):
            run_engine("no-cluster", cluster="tcp://127.0.0.1:9", db_url=on_digits)
        experiment = repo.get_experiment(conn, "no-cluster")
        assert experiment.status == "interrupted"
        lease = repo.get_engine(conn, experiment.id)
        assert lease is not None and lease.stopped
    finally:
        conn.close()
    assert run_engine("no-cluster", db_url=on_digits)["epochs_trained"] == 1  # resumed, locally


def test_two_engines_starting_at_once_on_a_new_experiment_get_one_lease(on_digits: str) -> None:
    # The lease's row does not exist before the first start: nothing to lock but the
    # experiment's. Before, about half of such pairs both took the lease.
    assert main([*RUN, "random", "--n", "1", "--epochs", "1", "--name", "lease-race"]) == 0
    holders = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(2)
    ]
    conns = [connect(on_digits) for _ in holders]
    try:
        exp = experiment_id(conns[0], "lease-race")
        host = socket.gethostname()
        for _ in range(5):
            with conns[0].cursor() as cur:
                cur.execute("DELETE FROM automl.engines WHERE experiment_id = %s", (exp,))
            conns[0].commit()
            barrier = threading.Barrier(len(holders), timeout=DEADLINE_S)
            outcomes: list[str] = []

            def start(
                conn: Any, pid: int, barrier: Any = barrier, outcomes: Any = outcomes
            ) -> None:
                barrier.wait()
                try:
                    repo.start_engine(conn, exp, host=host, pid=pid)
                    outcomes.append("took")
                except repo.EngineBusyError:
                    outcomes.append("refused")

            threads = [
                threading.Thread(target=start, args=(c, h.pid))
                for c, h in zip(conns, holders, strict=True)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=DEADLINE_S)
            assert sorted(outcomes) == ["refused", "took"]
    finally:
        for c in conns:
            c.close()
        for h in holders:
            h.kill()
            h.wait(timeout=DEADLINE_S)


def test_a_start_waits_for_the_killed_attempt_on_this_host_to_exit(on_digits: str) -> None:
    # An engine retried on the same worker while the attempt it replaces still shuts down.
    from automl_core.experiment.lease import take_lease
    from automl_core.experiment.stopping import StopRequest
    from automl_core.store.connection import RetryingConnection

    assert main([*RUN, "random", "--n", "1", "--epochs", "1", "--name", "lease-exit"]) == 0
    exiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    db = RetryingConnection(on_digits)
    try:
        exp = db.run(lambda c: experiment_id(c, "lease-exit"))
        db.run(lambda c: repo.start_engine(c, exp, host=socket.gethostname(), pid=exiting.pid))
        assert take_lease(db, "lease-exit", exp, StopRequest()) == 3
        assert exiting.poll() is not None  # taken only once it had gone
    finally:
        db.close()
        exiting.kill()
        exiting.wait(timeout=DEADLINE_S)
