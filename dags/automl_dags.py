"""The AutoML DAGs: one per spec file in ``dags/specs/`` (see docs/airflow.md).

No logic here: the factory in ``automl_airflow.dag_factory`` reads and validates the
specs and builds the DAGs. Parsing this file imports neither torch nor a database
driver's connection: it reads YAML and builds task objects.
"""

from __future__ import annotations

from pathlib import Path

from automl_airflow.dag_factory import dags_from_specs

_HERE = Path(__file__).resolve().parent

# Relative `space:` paths in a spec are resolved against the repository root.
for _dag in dags_from_specs(_HERE / "specs", base_dir=_HERE.parent).values():
    globals()[_dag.dag_id] = _dag
