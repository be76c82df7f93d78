"""Memory of a process tree, for benchmarks: PSS from /proc, sampled in a thread.

PSS, not RSS: the Dask workers and the driver share torch's pages, and RSS would count
them once per process. Linux only (``/proc/<pid>/smaps_rollup``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants, from the parent pids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields start after the last ")".
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def pss_bytes(pid: int) -> int:
    """Proportional set size of one process (0 when it is gone or unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class PssSampler:
    """Samples the PSS of a process tree every ``interval`` s in a thread; keeps the peak.

    PSS, not RSS: the Dask workers and the driver share torch's pages, and RSS would count
    them once per process.
    """

    # Reading smaps_rollup walks each process's page tables: every 0.5 s over Airflow's
    # ~30 processes it took about 10% of a core from the run being measured.
    def __init__(self, root: int, interval: float = 2.0) -> None:
        self.root, self.interval, self.peak = root, interval, 0
        # The machine's 1-minute load average while sampling: on a shared 2-core machine
        # it says how much of a wall time was other people's work.
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(pss_bytes(p) for p in tree_pids(self.root)))
            self.loads.append(os.getloadavg()[0])
            self._stop.wait(self.interval)

    def __enter__(self) -> PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
