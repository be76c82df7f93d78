"""Results people can use: the leaderboard (DataFrame, table, JSON, SQL views), plots
and the HTML report.

Importing this package is cheap: pandas and matplotlib are imported by the functions
that need them.
"""

from automl_core.report.html import write_report
from automl_core.report.leaderboard import (
    LEADERBOARD_COLUMNS,
    epoch_history,
    format_table,
    job_log,
    leaderboard,
    records,
    rung_results,
)
from automl_core.report.plots import Utilisation, utilisation

__all__ = [
    "LEADERBOARD_COLUMNS",
    "Utilisation",
    "epoch_history",
    "format_table",
    "job_log",
    "leaderboard",
    "records",
    "rung_results",
    "utilisation",
    "write_report",
]
