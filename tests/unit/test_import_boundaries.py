"""The house rules on imports: the core never imports Airflow; the pure parts import
neither torch, dask nor psycopg2. Each check runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import importlib, pkgutil, sys
import automl_core
for info in pkgutil.walk_packages(automl_core.__path__, "automl_core."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print("airflow" in sys.modules or any(m.startswith("airflow.") for m in sys.modules))
"""


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_no_core_module_imports_airflow() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "module",
    ["automl_core.space", "automl_core.search", "automl_core.mop", "automl_core.executors"],
)
def test_pure_packages_import_no_torch_dask_or_psycopg2(module: str) -> None:
    loaded = loaded_after(f"import {module}")
    assert not {"torch", "dask", "distributed", "psycopg2", "airflow"} & loaded


def test_the_cli_starts_without_torch() -> None:
    assert "torch" not in loaded_after("from automl_core.cli import build_parser; build_parser()")
