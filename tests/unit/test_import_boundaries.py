"""The house rules on imports and sizes: the core never imports Airflow; the pure parts
import neither torch, dask nor psycopg2; no package imports one that imports it back; no
module (nor benchmark script) is over 400 lines. Import checks run in a fresh interpreter; the graph is read
from the source (lazy and type-only imports count: they are dependencies too)."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("automl_core", "plugins/automl_airflow", "dags")
MAX_MODULE_LINES = 400

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


def test_the_search_plan_imports_without_the_engine() -> None:
    # What building a DAG needs (the request and the plan), without the run-time steps.
    loaded = loaded_after("import automl_core.experiment.plan")
    assert not {"automl_core.experiment.engine", "automl_core.experiment.api"} & loaded


def test_every_public_name_of_the_experiment_package_resolves() -> None:
    import importlib

    import automl_core.experiment as experiment

    assert set(experiment.__all__) == set(experiment._MODULE_OF)
    for name, module in experiment._MODULE_OF.items():
        defined = getattr(importlib.import_module(f"automl_core.experiment.{module}"), name)
        assert getattr(experiment, name) is defined, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        experiment.nothing  # noqa: B018


def _package(module: str) -> str:
    """The node a module belongs to: ``automl_core.<first level>``, the plugin, or dags."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "automl_core" else parts[0]


def _sources() -> list[tuple[str, Path]]:
    out = []
    for root in ROOTS:
        base = REPO / root
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base.parent).with_suffix("")
            out.append((".".join(rel.parts).removesuffix(".__init__"), path))
    return out


def package_graph() -> dict[str, set[str]]:
    """Package -> the packages its modules import (ours only)."""
    ours = {"automl_core", "automl_airflow", "dags"}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in _sources():
        node = _package(module)
        graph[node]  # a package that imports nothing is still a node
        for stmt in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(stmt, ast.Import):
                names = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                names = [stmt.module]
            else:
                continue
            for name in names:
                target = _package(name)
                if name.split(".")[0] in ours and target != node:
                    graph[node].add(target)
    return graph


def test_the_package_graph_has_no_cycle() -> None:
    graph = package_graph()
    assert {"automl_core.store", "automl_core.mop", "automl_airflow", "dags"} <= set(graph)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"packages import each other back: {' -> '.join(exc.args[1])}")


def test_the_root_package_imports_nothing_of_ours() -> None:
    assert package_graph()["automl_core"] == set()


def test_the_graph_sees_lazy_imports() -> None:
    # automl_core.__main__ imports the CLI at module level; export imports store in functions.
    graph = package_graph()
    assert "automl_core.cli" in graph["automl_core.__main__"]
    assert "automl_core.store" in graph["automl_core.export"]


def test_no_module_is_over_400_lines() -> None:
    scripts = sorted((REPO / "benchmarks").glob("*.py"))
    long = {
        str(path.relative_to(REPO)): n
        for path in [*(path for _, path in _sources()), *scripts]
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these modules along a seam: {long}"
