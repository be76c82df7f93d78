"""User architectures: modules named by the operator, imported in every process.

The registry lives per process, so a Dask worker must import the module that registers
a user's builder before it can train a trial that names it. The list comes from the
deployment's environment (``AUTOML_ARCHITECTURE_MODULES``, comma-separated), never from
a UI form or an API ``conf``: those only ever pick a name from the registry.
"""

from __future__ import annotations

import importlib
import os

ENV = "AUTOML_ARCHITECTURE_MODULES"
_imported: set[str] = set()


def import_architecture_modules() -> list[str]:
    """Import every module the environment names (once per process); returns their names."""
    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    for name in names:
        if name not in _imported:
            importlib.import_module(name)
            _imported.add(name)
    return names
