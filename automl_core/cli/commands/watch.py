"""``automl watch``: follow a search's brackets and batches as they train."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

POLL_S = 1.0
# A search takes a while to create its experiment (an Airflow run: its first tasks, 20 s
# in make demo on a slow machine), so why the name is not there yet (a misspelt name,
# say) is said only after this long.
WAIT_NOTE_S = 60.0


def register(subparsers: Any) -> None:
    watch = subparsers.add_parser(
        "watch",
        help="print a search's progress, one line per bracket or batch, as it changes",
        description="Poll the database every second and print each bracket's (or batch's) "
        "rung and trained trials when they change, until EXPERIMENT is completed or failed, "
        "the process --pid ends, or --timeout seconds have passed (exit code 3). A search "
        "run by `automl run` whose process is gone ends the watch (exit code 4); an Airflow "
        "run's engine task may still be retried, so that one is only reported. It may start "
        "before the search creates EXPERIMENT; one that never appears (a misspelt name, "
        "another database) ends it with exit code 5.",
    )
    watch.add_argument("experiment", metavar="EXPERIMENT")
    watch.add_argument("--pid", type=int, help="stop when this process (the search) ends")
    watch.add_argument(
        "--timeout", type=float, default=3600.0, metavar="S", help="give up after S seconds"
    )
    watch.set_defaults(handler=_watch)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(args: argparse.Namespace) -> int:
    from automl_core.experiment.progress import group_lines
    from automl_core.store import repository as repo
    from automl_core.store.connection import connect, database_url

    start = time.monotonic()
    deadline = start + args.timeout
    shown: dict[str, str] = {}
    reported: set[str] = set()
    missing: str | None = None  # why the experiment is not there, while it is not
    said_waiting = False
    conn = connect(database_url())
    try:
        while time.monotonic() < deadline:
            experiment, missing = _find(conn, repo, args.experiment)
            if experiment is not None:
                for group, line in group_lines(conn, experiment).items():
                    if shown.get(group) != line:
                        elapsed = time.monotonic() - start
                        print(f"[{elapsed:6.1f}s] {group.replace('_', ' '):<10} {line}", flush=True)
                        shown[group] = line
                if experiment.status != repo.ExperimentState.RUNNING:
                    print(f"experiment {experiment.name}: {experiment.status}", flush=True)
                    return 0
                if _engine_gone(conn, repo, experiment, reported):
                    return 4
            elif not said_waiting and time.monotonic() - start >= WAIT_NOTE_S:
                said_waiting = True
                print(f"automl watch: waiting for the search to create it. {missing}", flush=True)
            if not _alive(args.pid):
                if missing is None:
                    return 0
                print(f"automl watch: process {args.pid} ended. {missing}", flush=True)
                return 5
            time.sleep(POLL_S)
    finally:
        conn.close()
    if missing is not None:
        print(f"automl watch: nothing appeared in {args.timeout:.0f} s. {missing}", flush=True)
        return 5
    print(f"automl watch: still running after {args.timeout:.0f} s; stopped watching.")
    return 3


def _engine_gone(conn: Any, repo: Any, experiment: Any, reported: set[str]) -> bool:
    """Whether the watch should end: the experiment is stale and nothing will resume it
    (an `automl run` process that is gone). A stale Airflow experiment is reported once:
    its engine task's retry may resume it."""
    lease = repo.stale_lease(conn, experiment)
    if lease is None:
        return False
    if experiment.name not in reported:
        reported.add(experiment.name)
        print(
            f"experiment {experiment.name}: its engine (pid {lease.pid} on {lease.host}) is "
            f"gone; to resume it, {repo.resume_hint(experiment)}",
            flush=True,
        )
    return not experiment.airflow_run_id


def _find(conn: Any, repo: Any, name: str) -> tuple[Any, str | None]:
    """The experiment and None; or None and why it is not there (yet: the search may be
    starting)."""
    from automl_core.errors import UserInputError
    from automl_core.store.migrations import LATEST_VERSION, current_version

    version = current_version(conn)
    if version == 0:
        return None, (
            f"There is no experiment named {name!r}: this database holds no experiments "
            "yet. Check AUTOML_DB_URL if the experiment lives in another database."
        )
    if version < LATEST_VERSION:
        # Being created or upgraded now (the search's first step does it), or older than
        # this automl: either way its tables lack columns the reads below name.
        return None, (
            f"This database's automl schema is at version {version}, before this automl's "
            f"{LATEST_VERSION}: the search's first step brings it up to date (so does "
            "`automl db init`)."
        )
    try:
        return repo.get_experiment(conn, name), None
    except UserInputError as missing:
        return None, str(missing)
