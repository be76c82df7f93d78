"""Paths and names the Airflow tests share (no side effects: conftest sets the environment)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
SPECS = DAGS / "specs"

EXAMPLE_DAG_IDS = {
    "automl_hyperband_digits",
    "automl_hyperopt_digits",
    "automl_grid_digits",
    "automl_random_digits",
    "automl_nightly_hyperband_digits",
    "automl_hyperband_signals",
}
