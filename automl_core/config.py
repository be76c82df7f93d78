"""Where the project keeps its local state, and the environment variables that steer it.

Everything the project writes on its own behalf (the embedded PostgreSQL server, its
socket, log and lock) lives under one folder, the project home, so that removing that
folder removes every trace and nothing outside it is ever changed.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The database to use; when unset, the embedded server inside the project home is used.
DB_URL_ENV = "AUTOML_DB_URL"
#: Overrides the project home (default ``<repository root>/.automl``).
HOME_ENV = "AUTOML_HOME"
#: The existing unprivileged account the embedded server runs as when started by root.
EMBEDDED_USER_ENV = "AUTOML_EMBEDDED_USER"

# automl_core/config.py -> parents[1] is the folder that holds the automl_core package.
_REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def repository_root() -> Path:
    """The folder that holds the ``automl_core`` package."""
    return _REPOSITORY_ROOT


def project_home() -> Path:
    """The folder for the project's local state, as an absolute path.

    ``AUTOML_HOME`` when it is set and not blank (``~`` is expanded, a relative path is
    taken from the current directory), else ``<repository root>/.automl``. The folder is
    not created here: whoever writes into it creates what it needs.
    """
    value = os.environ.get(HOME_ENV, "").strip()
    if value:
        return Path(value).expanduser().absolute()
    return _REPOSITORY_ROOT / ".automl"


def configured_db_url() -> str | None:
    """``AUTOML_DB_URL`` when it is set and not blank, else ``None`` (use the embedded server).

    A blank value counts as unset because container tooling often exports empty variables.
    """
    value = os.environ.get(DB_URL_ENV, "").strip()
    return value or None
