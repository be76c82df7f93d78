"""User architectures: modules named by the operator, imported in every process.

The registry lives per process, so every process that builds a model (a Dask worker,
``automl predict``, an export, an Airflow task) must import the modules that register a
user's builders before it looks a name up. ``import_architecture_modules`` does that; the
registry calls it on every lookup (``automl_core.training.registry``), so no entry point
can forget it. The list comes from the deployment's environment
(``AUTOML_ARCHITECTURE_MODULES``, comma-separated module names), never from a UI form
or an API ``conf``: those only ever pick a name from the registry.
"""

from __future__ import annotations

import importlib
import os

from automl_core.errors import UserInputError

ENV = "AUTOML_ARCHITECTURE_MODULES"
_imported: set[str] = set()


def architecture_modules() -> list[str]:
    """The module names ``AUTOML_ARCHITECTURE_MODULES`` lists, in order."""
    return [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]


def import_architecture_modules() -> list[str]:
    """Import every module the environment names (once per process); returns their names.

    Cheap after the first call (a set lookup per name), so it is called on every
    registry lookup. Raises ``UserInputError`` naming the variable and the module when
    one cannot be imported.
    """
    # No lock of our own: importlib serialises imports of one module, and holding a lock
    # across an import could deadlock with a thread importing the module directly.
    names = architecture_modules()
    for name in names:
        if name in _imported:
            continue
        # Marked first: the module registers its builders through the registry, which
        # calls back here while the import is under way.
        _imported.add(name)
        try:
            importlib.import_module(name)
        except ImportError as exc:
            _imported.discard(name)
            raise UserInputError(
                f"{ENV} names the module {name!r}, which cannot be imported ({exc}): "
                "install it or fix the variable."
            ) from exc
        except BaseException:
            _imported.discard(name)
            raise
    return names
