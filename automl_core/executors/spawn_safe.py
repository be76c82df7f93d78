"""Starting Dask's local worker processes from inside a host program such as Airflow."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def spawn_safe_main() -> Iterator[None]:
    """Let Dask start (and restart) local worker processes from inside a host program.

    Multiprocessing's "spawn" and "forkserver" (what local workers start with, see
    ``local_cluster``) both re-import the parent's ``__main__`` in each child. In an
    Airflow task that is the ``airflow`` command, and importing Airflow in the child fails: Airflow blocks the metadata database for task processes
    (its URL becomes ``airflow-db-not-allowed:///``). Hiding ``__main__``'s file and spec
    while training makes the children start from a clean interpreter instead; the worker
    code they run lives in importable modules, so nothing is lost.
    """
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if hasattr(main, k)}
    if main is None or not saved:
        yield
        return
    if "__file__" in saved:
        del main.__file__
    main.__spec__ = None
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(main, key, value)
