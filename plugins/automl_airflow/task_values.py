"""Values a task gets from its rendered templates, and what it gives back to XCom.

Templates render params as text (a form value never becomes code); these functions turn
that text back into values, name the experiment of a run, and keep XCom small.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from automl_core.errors import UserInputError
from automl_core.experiment.request import NAME_PATTERN

# The Airflow connection of the data/results database, the operators' default (here,
# not in automl_airflow.hooks, so that building a DAG imports no database driver).
AUTOML_CONN_ID = "automl_db"

# Characters automl_core allows in an experiment name (letters, digits, '_.:+-').
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:+-]")
_NAME_MAX = 200  # the longest name NAME_PATTERN (automl_core's rule) takes


def opt_str(value: Any) -> str | None:
    """A rendered optional text field: an empty rendering means "not given"."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def as_int(value: Any, field: str) -> int:
    """A rendered integer field; ``UserInputError`` naming the field otherwise.

    ``7.0`` is 7: JSON Schema, and so the form and the REST API, count it as an integer,
    and the task must accept what they accepted.
    """
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number.is_integer():
        return int(number)
    raise UserInputError(f"The value of {field} is {value!r}, but must be an integer.")


def export_target(value: Any) -> str | None:
    """A rendered ``export_to``: None, ``s3://...``, or an absolute folder.

    A task's working directory is wherever its worker started, so a relative folder is
    taken inside the project home, where everything else automl writes lives.
    """
    from pathlib import Path

    from automl_core.config import project_home

    target = opt_str(value)
    if target is None or target.startswith("s3://") or Path(target).is_absolute():
        return target
    return str(project_home() / target)


def default_experiment_name(dag_id: str, run_id: str) -> str:
    """The experiment a run writes to when the form leaves the name empty.

    Made from the DAG and run ids, so a retried or cleared task of the same run finds
    the same experiment instead of starting a new one. Where the ids do not make a valid
    name as they are (a character outside the name rule, or over 200 characters), the
    name ends in a hash of them: two runs whose ids differ only there (``a/b`` and
    ``a_b``, or past the 200th character) must not continue each other's experiment.
    """
    raw = f"{dag_id}__{run_id}"
    name = _NAME_UNSAFE.sub("_", raw)
    if name == raw and NAME_PATTERN.match(name):
        return name
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]
    # The rule's first character is a letter or digit (a DAG id may start with '_').
    base = name.lstrip("_.:+-")[: _NAME_MAX - len(digest) - 2]
    return f"{base}__{digest}" if base else digest


def xcom_summary(result: Mapping[str, Any], *, max_items: int = 50) -> dict[str, Any]:
    """What of a core result goes to XCom: scalars, and short lists of scalars."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, str | int | float | bool) or value is None:
            out[key] = value
        elif isinstance(value, Sequence) and len(value) <= max_items:
            out[key] = [v if isinstance(v, str | int | float | bool) else str(v) for v in value]
        elif isinstance(value, Sequence):
            out[f"{key}_count"] = len(value)
    return out
