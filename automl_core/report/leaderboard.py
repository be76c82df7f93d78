"""Results as pandas DataFrames, and the leaderboard as a table or JSON.

Every reader takes an open psycopg2 connection and an experiment *name* and raises
``UserInputError`` when no experiment has that name. The leaderboard comes from the
``automl.leaderboard`` view (``automl_core.store.views``), so its ranking rule lives
in one place: best validation accuracy first, ties by trial id, trials without a
validation result last. A trial's model is its state at ``best_epoch``: the epoch it is
ranked by is the one export writes and predict scores with. The rows are read by
``automl_core.store.repository``; this module makes frames of them and presents them.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from automl_core.errors import UserInputError
from automl_core.store import repository as repo
from automl_core.store.repository import (
    EPOCH_COLUMNS,
    JOB_COLUMNS,
    LEADERBOARD_COLUMNS,
    RUNG_COLUMNS,
    ExperimentState,
    experiment_record,
)

if TYPE_CHECKING:
    import pandas as pd

    from automl_core.store.repository import Experiment

__all__ = [
    "EPOCH_COLUMNS",
    "JOB_COLUMNS",
    "LEADERBOARD_COLUMNS",
    "RUNG_COLUMNS",
    "epoch_history",
    "format_table",
    "job_log",
    "leaderboard",
    "records",
    "rung_results",
    "short_config",
    "differing",
    "to_json",
]

log = logging.getLogger(__name__)

# Integer columns that are never NULL are int64 in every frame (trial_id joins across
# them); those that may be missing (no bracket for random search, no best epoch before a
# validation result) are pandas' nullable Int64.
_INT_COLUMNS = {
    "leaderboard": ("rank", "trial_id", "epochs"),
    "epochs": ("trial_id", "epoch"),
    "rungs": ("bracket", "rung", "trial_id", "target_epochs"),
    "jobs": ("trial_id", "epoch", "partition"),
}
_NULLABLE_INT_COLUMNS = ("bracket", "batch", "rung", "best_epoch")
_FLOAT_COLUMNS = (
    "best_valid_accuracy",
    "final_valid_accuracy",
    "final_valid_loss",
    "best_valid_loss",
    "train_seconds",
)


def _frame(rows: Sequence[Sequence[Any]], columns: Sequence[str], ints: str) -> pd.DataFrame:
    """The rows as a DataFrame whose ``_INT_COLUMNS[ints]`` are int64, even when empty."""
    import pandas as pd

    df = pd.DataFrame.from_records(list(rows), columns=list(columns))
    for col in _INT_COLUMNS[ints]:
        df[col] = df[col].astype("int64")
    return df


def leaderboard(conn: Any, experiment_name: str, *, limit: int | None = None) -> pd.DataFrame:
    """Every trial of the experiment, best first, with ``LEADERBOARD_COLUMNS``.

    ``config`` holds dicts; ``rank``, ``trial_id`` and ``epochs`` are int64, the integer
    columns that may be missing (bracket, batch, rung, best_epoch) pandas' nullable
    ``Int64``; metrics are float (NaN when a trial has no epochs).
    Raises UserInputError for an unknown experiment or a ``limit`` below 1.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UserInputError(f"The limit is {limit!r}, but must be a whole number of at least 1.")
    exp = experiment_record(conn, experiment_name)
    _warn_if_unfinished(conn, exp)
    df = _frame(
        repo.leaderboard_rows(conn, exp.id, limit=limit), LEADERBOARD_COLUMNS, "leaderboard"
    )
    for col in _NULLABLE_INT_COLUMNS:
        df[col] = df[col].astype("Int64")
    for col in _FLOAT_COLUMNS:
        df[col] = df[col].astype("float64")
    return df


def _warn_if_unfinished(conn: Any, exp: Experiment) -> None:
    """Say when the experiment stopped before its end (its trials are not all trained)."""
    if exp.status == ExperimentState.INTERRUPTED:
        log.warning(
            "experiment %r was interrupted; to resume it, %s", exp.name, repo.resume_hint(exp)
        )
        return
    lease = repo.stale_lease(conn, exp)
    if lease is not None:
        log.warning(
            "experiment %r is stale: marked running, but its engine (pid %d on %s) is gone; "
            "to resume it, %s",
            exp.name,
            lease.pid,
            lease.host,
            repo.resume_hint(exp),
        )


def epoch_history(conn: Any, experiment_name: str) -> pd.DataFrame:
    """One row per (trial, epoch) with ``EPOCH_COLUMNS``, ordered by trial then epoch."""
    exp = experiment_record(conn, experiment_name)
    df = _frame(repo.epoch_history_rows(conn, exp.id), EPOCH_COLUMNS, "epochs")
    for col in ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "seconds"):
        df[col] = df[col].astype("float64")
    return df


def rung_results(conn: Any, experiment_name: str) -> pd.DataFrame:
    """Hyperband rung membership with ``RUNG_COLUMNS`` (empty for other methods)."""
    exp = experiment_record(conn, experiment_name)
    df = _frame(repo.rung_result_rows(conn, exp.id), RUNG_COLUMNS, "rungs")
    df["metric"] = df["metric"].astype("float64")
    return df


def job_log(conn: Any, experiment_name: str) -> pd.DataFrame:
    """Finished sub-epoch jobs with ``JOB_COLUMNS`` (times are ``time.time()`` floats)."""
    exp = experiment_record(conn, experiment_name)
    df = _frame(repo.job_log_rows(conn, exp.id), JOB_COLUMNS, "jobs")
    for col in ("started_at", "ended_at"):
        df[col] = df[col].astype("float64")
    return df


# --- presentation ----------------------------------------------------------------------


def short_config(config: Mapping[str, Any] | None, width: int = 48) -> str:
    """``key=value`` pairs (architecture first, floats in %g) cut to ``width`` characters."""
    if not config:
        return ""
    items = sorted(config.items(), key=lambda kv: (kv[0] != "architecture", kv[0]))
    text = " ".join(f"{k}={format(v, 'g') if isinstance(v, float) else v}" for k, v in items)
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def differing(configs: Sequence[Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """Each configuration cut to the keys whose values differ among ``configs`` (a key
    some lack differs), so that a short listing shows what sets the trials apart rather
    than the keys they share; all of each when nothing differs (a single trial, say)."""
    dicts = [dict(c or {}) for c in configs]
    keys = {k for c in dicts for k in c}
    varying = {k for k in keys if len({repr(c.get(k, _MISSING)) for c in dicts}) > 1}
    if not varying:
        return dicts
    return [{k: v for k, v in c.items() if k in varying} for c in dicts]


_MISSING = object()


def _cell(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        import pandas as pd

        if value is pd.NA:
            return "-"
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if kind == "metric":
        return f"{float(value):.4f}"
    if kind == "seconds":
        return f"{float(value):.1f}"
    return str(value)


_TABLE = (
    # (column, header, kind, right-aligned)
    ("rank", "rank", "int", True),
    ("trial_id", "trial", "int", True),
    ("status", "status", "text", False),
    ("bracket", "bracket", "int", True),
    ("rung", "rung", "int", True),
    ("epochs", "epochs", "int", True),
    ("best_valid_accuracy", "best_acc", "metric", True),
    ("best_epoch", "best_epoch", "int", True),
    ("final_valid_accuracy", "final_acc", "metric", True),
    ("final_valid_loss", "final_loss", "metric", True),
    ("train_seconds", "time_s", "seconds", True),
    ("config", "config", "config", False),
)


def format_table(df: pd.DataFrame, *, config_width: int = 48) -> str:
    """A fixed-width text table of a leaderboard DataFrame ('-' for missing values); the
    config column shows the keys that differ among its rows (:func:`differing`)."""
    records = df.to_dict("records")
    configs = differing([rec.get("config") for rec in records])
    rows = []
    for rec, config in zip(records, configs, strict=True):
        row = []
        for col, _, kind, _ in _TABLE:
            value = config if kind == "config" else rec.get(col)
            row.append(
                short_config(value, config_width) if kind == "config" else _cell(value, kind)
            )
        rows.append(row)
    headers = [h for _, h, _, _ in _TABLE]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if spec[3] else c.ljust(w)
            for c, w, spec in zip(cells, widths, _TABLE, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    if not rows:
        out.append("(no trials)")
    return "\n".join(out)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    # JSON has no NaN or Infinity (a diverged loss): strict parsers reject them.
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The DataFrame as JSON-ready dicts: NaN/NA and infinities to None, times to ISO 8601."""
    import pandas as pd

    out = []
    for rec in df.astype(object).where(df.notna(), None).to_dict("records"):
        out.append({str(k): None if v is pd.NA else _json_value(v) for k, v in rec.items()})
    return out


def to_json(df: pd.DataFrame) -> str:
    """``records(df)`` as an indented, strict JSON list (no NaN or Infinity)."""
    return json.dumps(records(df), indent=2, default=str, allow_nan=False)
