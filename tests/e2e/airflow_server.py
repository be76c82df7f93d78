"""Start ``airflow standalone`` on loopback for the end-to-end tests, drive it, stop it.

The server runs in its own session (``start_new_session``), so every process it starts,
down to the Dask workers of a training task, can be found by session id and none is left
behind (see :meth:`AirflowStandalone.stop` for the order of signals).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
TRAINING_POOL = "automl_training"
HYPERBAND_DAG = "automl_hyperband_digits"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when the intervals (start, end) share some time."""
    return a[0] < b[1] and b[0] < a[1]


def describe(pids: list[int]) -> list[str]:
    """``pid: command line`` of each process, for messages."""
    out = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "(gone)"
        out.append(f"{pid}: {cmd.strip()[:200]}")
    return out


def session_processes(sid: int) -> list[int]:
    """Pids of the live processes in session ``sid`` (from /proc; zombies excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may contain spaces) start at ") ".
        fields = stat[stat.rindex(")") + 2 :].split()
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry.name))
    return pids


@dataclass
class AirflowStandalone:
    """One ``airflow standalone`` with its home, metadata database and port."""

    home: Path
    metadata_url: str
    env_extra: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    token: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / "standalone.log"

    def environment(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.pop("AUTOML_DB_URL", None)
        env.update(
            {
                "PATH": f"{bin_dir}:{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
                # 2 cores: two task slots, a short scheduler loop, quick DAG discovery.
                "AIRFLOW__CORE__PARALLELISM": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "TMPDIR": str(self.home / "tmp"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.env_extra)
        return env

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` CLI command against this home; fail with its output."""
        done = subprocess.run(
            [str(Path(sys.executable).with_name("airflow")), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )
        assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self, *, timeout: float = 180) -> None:
        """Migrate, create the training pool, start standalone and wait until it serves."""
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate")
        self.airflow("pools", "set", TRAINING_POOL, "1", "AutoML training (one slot per task)")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("airflow")), "standalone"],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
            start_new_session=True,
        )
        self.wait_healthy(timeout)
        self.token = self.get_token()

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                f"airflow standalone exited; log:\n{self.tail()}"
            )
            try:
                reply = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                last = reply.json()
                parts = ("metadatabase", "scheduler", "dag_processor")
                if reply.status_code == 200 and all(
                    last.get(p, {}).get("status") == "healthy" for p in parts
                ):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"Airflow not healthy after {timeout} s ({last}); log:\n{self.tail()}")

    def password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(path.read_text())["admin"])

    def get_token(self) -> str:
        reply = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": "admin", "password": self.password()},
            timeout=30,
        )
        assert reply.status_code in (200, 201), reply.text
        return str(reply.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(
            method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=60, **kwargs
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self.api("GET", f"/dags/{dag_id}")
            if reply.status_code == 200:
                return dict(reply.json())
            time.sleep(2)
        raise AssertionError(f"DAG {dag_id} not parsed after {timeout} s; log:\n{self.tail()}")

    def unpause(self, dag_id: str) -> None:
        reply = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert reply.status_code == 200, reply.text

    def trigger(self, dag_id: str, conf: Mapping[str, Any]) -> httpx.Response:
        return self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf)}
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """The finished run (success or failed); fail when it is still going at the deadline."""
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()
            if run.get("state") in ("success", "failed"):
                return run
            time.sleep(3)
        raise AssertionError(
            f"run {run_id} still {run.get('state')} after {timeout} s: {self.task_states(dag_id, run_id)}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        reply = self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )
        return {t["task_id"]: t["state"] for t in reply.json().get("task_instances", [])}

    def task_spans(self, dag_id: str, run_id: str) -> dict[str, tuple[float, float]]:
        """Task id -> (start, end) in epoch seconds, for the tasks that ran."""
        from datetime import datetime

        reply = self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )
        spans = {}
        for t in reply.json().get("task_instances", []):
            if t.get("start_date") and t.get("end_date"):
                start = datetime.fromisoformat(t["start_date"]).timestamp()
                spans[t["task_id"]] = (start, datetime.fromisoformat(t["end_date"]).timestamp())
        return spans

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        reply = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            headers={"Accept": "application/json"},
        )
        return reply.text

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 60) -> list[str]:
        """Stop every process of the session; returns those that needed SIGKILL.

        SIGINT goes to the standalone parent first: it stops its components itself
        (SIGTERM to each), which takes ~3 s. Sent to the whole group instead, each
        component gets SIGINT and standalone's SIGTERM at once, and the scheduler was
        seen waiting 40+ s on a LocalExecutor worker. The parent then lingers and gets
        SIGTERM (as FIELD-NOTES says). Whatever is left in the session after that gets
        SIGINT and SIGTERM as a group, and at last SIGKILL.
        """
        if self.process is None:
            return []
        sid = self.process.pid
        self._signal_and_wait(signal.SIGINT, sid, group=False, wait=timeout, until={sid})
        self._signal_and_wait(signal.SIGTERM, sid, group=False, wait=15, until=set())
        self._signal_and_wait(signal.SIGINT, sid, group=True, wait=15, until=set())
        self._signal_and_wait(signal.SIGTERM, sid, group=True, wait=10, until=set())
        left = session_processes(sid)
        stragglers = describe(left)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._wait_until(sid, set(), 10)
        self.process.wait(timeout=10)
        return stragglers

    def _signal_and_wait(
        self, sig: int, sid: int, *, group: bool, wait: float, until: set[int]
    ) -> None:
        if set(session_processes(sid)) <= until:
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(sid, sig)
            else:
                os.kill(sid, sig)
        self._wait_until(sid, until, wait)

    def _wait_until(self, sid: int, until: set[int], wait: float) -> None:
        """Wait until only ``until`` are left in the session (the parent is reaped here)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process is not None:
                self.process.poll()
            if set(session_processes(sid)) <= until:
                return
            time.sleep(0.25)
