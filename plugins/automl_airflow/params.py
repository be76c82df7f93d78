"""The run form: Params for what may change per run without changing the DAG's shape.

One JSON schema per field serves three readers: Airflow's trigger form (types, bounds,
enums, titles and descriptions render as form widgets), Airflow's own validation of a
REST ``conf`` on trigger (a bad value is answered with HTTP 400), and the DAG's first
task, :func:`check_run_params`, which re-checks them together with the rules that span
fields. Budget knobs that fix the DAG's shape (``Knob.shapes_plan``: Hyperband's R, eta
and skip_last; the number of configurations, batches and the batch size) are spec keys,
never params; the method's other knobs (``epochs``) are params too (``knob_fields``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from automl_airflow.clusters import allowed_clusters
from automl_airflow.specs import (
    LOADERS,
    MAX_TABLE_LEN,
    RUN_EXPORT_HINT,
    RUN_EXPORT_PATTERN,
    TABLE_PATTERN,
    DagSpec,
)
from automl_core.errors import UserInputError

# "$" also matches before a final newline where a pattern is checked by Python's
# jsonschema (Airflow, on a REST trigger; check_run_params), so `{"table": "digits\n"}`
# passed `^[A-Za-z_][A-Za-z0-9_]*$`. Every text field with a pattern also carries this
# rule: JSON schema's own "not", so Airflow, this module and the form read it alike
# (a browser's "$" refuses the newline already), and the patterns stay plain and
# portable. "type" inside: without it, "not" would refuse null too.
ONE_LINE: dict[str, Any] = {"not": {"type": "string", "pattern": r"\n"}}


# automl_core's experiment-name rule (letters, digits, '_.:+-'; 200 at most), written
# with escapes inside the class so a browser can compile it too (see specs.EXPORT_PATTERN).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,199}$"


def run_export_pattern(spec_target: str | None) -> str:
    """The run form's and REST conf's rule for ``export_to``: empty, S3, a folder inside
    the project home (``RUN_EXPORT_PATTERN``), or exactly the spec's own target (which
    may be absolute: the deployment wrote it). The spec's target was checked by
    ``EXPORT_PATTERN``, so it holds only ``[A-Za-z0-9_.=/-]``; of those, only ``.`` needs
    an escape outside a class, which keeps the pattern valid for a browser too.
    """
    own = f"|^{spec_target.replace('.', chr(92) + '.')}$" if spec_target else ""
    return f"^$|{RUN_EXPORT_PATTERN}{own}"


@dataclass(frozen=True)
class Field:
    """One run parameter: its default and the JSON schema it must satisfy."""

    name: str
    default: Any
    schema: Mapping[str, Any]


def run_fields(spec: DagSpec) -> list[Field]:
    """The form fields of a spec's DAG, in the order the form shows them."""
    from automl_core.experiment.request import LIMITS  # the CLI's and the spec's limits
    from automl_core.search.methods import get_method

    fields = [
        Field(
            "table",
            spec.dataset,
            {
                "type": "string",
                "pattern": TABLE_PATTERN,
                **ONE_LINE,
                "minLength": 1,
                "maxLength": MAX_TABLE_LEN,
                "title": "Table",
                "description": "Source table with the labelled data (an unquoted SQL name: "
                "letters, digits and _). It is packed into partitions before training "
                "unless that was done already.",
            },
        ),
        Field(
            "load_if_missing",
            spec.load_if_missing,
            {
                "type": ["null", "string"],
                "enum": [None, *LOADERS],
                "title": "Load if missing",
                "description": "A built-in data set to load into the table when the table "
                "does not exist; empty to fail instead.",
            },
        ),
        Field(
            "seed",
            spec.seed,
            {
                "type": "integer",
                "minimum": LIMITS["seed"][0],
                "maximum": LIMITS["seed"][1],
                "title": "Seed",
                "description": "Seeds sampling, weight initialisation, shuffles and each "
                "model's order of partitions: with the same data, space and seed, every "
                "trial's metrics, promotions and best model repeat bit for bit on CPU "
                "workers, whatever their number or timing (on GPUs, up to the kernels' own "
                "determinism). Only times differ.",
            },
        ),
    ]
    fields += knob_fields(spec)
    fields += [
        Field(
            "experiment_name",
            None,
            {
                "type": ["null", "string"],
                "pattern": NAME_PATTERN,
                **ONE_LINE,
                "title": "Experiment name",
                "description": "Optional. Default: the DAG id and the run id. Giving the "
                "name of an existing experiment continues it.",
            },
        ),
        Field(
            "export_to",
            spec.export_to,
            {
                "type": ["null", "string"],
                # Empty, like null, means "no export" (the form says so).
                "pattern": run_export_pattern(spec.export_to),
                **ONE_LINE,
                "title": "Export target",
                "description": "Where the best model is exported: s3://bucket/prefix or a "
                "folder inside the project home (AUTOML_HOME), or the spec's own target. "
                "Empty: no export.",
            },
        ),
        Field(
            "cluster",
            None,
            {
                "type": ["null", "string"],
                # "" like null: the default cluster (the form says empty means that).
                "enum": [None, "", *sorted(allowed_clusters(spec.clusters))],
                "title": "Dask cluster",
                "description": "Optional: one of the Dask clusters this deployment names "
                "(the spec's clusters and AUTOML_DASK_CLUSTERS). Empty: the spec's default "
                "cluster, else AUTOML_DASK_ADDRESS, else a local cluster with one worker "
                "per partition.",
            },
        ),
    ]
    if get_method(spec.method).narrowable:
        fields += narrow_fields()
    return fields


def run_knobs(spec: DagSpec) -> tuple[str, ...]:
    """The budget knobs of a spec's method that a run may change (the rest fix the DAG's
    shape), in the method's order."""
    from automl_core.search.methods import get_method

    return tuple(
        k.name for k in get_method(spec.method).knobs if not k.shapes_plan and k.name in spec.budget
    )


def knob_fields(spec: DagSpec) -> list[Field]:
    """One field per run knob (``run_knobs``): the spec's value is its default."""
    from automl_core.experiment.request import limits_of
    from automl_core.search.methods import get_method

    method = get_method(spec.method)
    fields = []
    for name in run_knobs(spec):
        knob = method.knob(name)
        schema: dict[str, Any] = {"type": "integer"}
        limits = limits_of(name)
        if limits is not None:
            schema.update(minimum=limits[0], maximum=limits[1])
        schema.update(title=knob.title or name, description=knob.description or knob.help)
        fields.append(Field(name, spec.budget_value(name), schema))
    return fields


def narrow_fields() -> list[Field]:
    """The second-round fields: an experiment to narrow the space from, and how many of
    its best trials (``automl run --narrow-from EXPERIMENT --top K``)."""
    from automl_core.experiment.request import LIMITS
    from automl_core.space.narrow import DEFAULT_TOP

    return [
        Field(
            "narrow_from",
            None,
            {
                "type": ["null", "string"],
                # "" like null: search the spec's space (the form says empty means that).
                "pattern": f"^$|{NAME_PATTERN}",
                **ONE_LINE,
                "title": "Narrow from experiment",
                "description": "Optional: the name of an experiment with results (it "
                "may still be running). This run "
                "searches that experiment's space narrowed to its best trials (each choice "
                "keeps the values they used, each range shrinks around them) instead of the "
                "spec's space, records it as its parent, and Hyperopt starts from its "
                "results. Empty: the spec's space.",
            },
        ),
        Field(
            "narrow_top",
            DEFAULT_TOP,
            {
                "type": "integer",
                "minimum": LIMITS["top"][0],
                "maximum": LIMITS["top"][1],
                "title": "Narrow to the top",
                "description": "With 'Narrow from experiment': how many of its best trials "
                "(by validation accuracy) the space is narrowed to.",
            },
        ),
    ]


def build_params(spec: DagSpec) -> dict[str, Any]:
    """Airflow ``Param`` objects for a spec's DAG (imported here: Airflow is heavy)."""
    from airflow.sdk import Param

    params: dict[str, Any] = {}
    for field in run_fields(spec):
        schema = dict(field.schema)
        description = schema.pop("description")
        params[field.name] = Param(field.default, description=description, **schema)
    return params


def run_schemas(spec: DagSpec) -> dict[str, dict[str, Any]]:
    """The JSON schema of every form field: what the first task of a run re-checks."""
    return {field.name: dict(field.schema) for field in run_fields(spec)}


def check_run_params(
    params: Mapping[str, Any],
    conf: Mapping[str, Any] | None,
    *,
    schemas: Mapping[str, Mapping[str, Any]],
    shape_keys: tuple[str, ...] = (),
    dag_id: str = "",
) -> dict[str, Any]:
    """Re-check a run's params and its conf; raise ``UserInputError`` naming the field.

    Airflow validates each Param on trigger; this repeats that (a run made another way,
    e.g. ``airflow dags test -c``, is held to the same rules) and adds what one field's
    schema cannot say. Returns the checked values, one per field.
    """
    # A conf key that is no param would be ignored silently: a typo ("epoch") or a knob
    # that changes the DAG's shape (R, eta) must fail loudly instead.
    for key in conf or {}:
        if key not in schemas:
            if key in shape_keys:
                hint = "it changes the DAG's shape, so it is set in the spec file"
            elif key in ("narrow_from", "narrow_top"):
                hint = (
                    "a grid search trains its whole grid, so it cannot narrow; narrow "
                    "with a DAG of another method"
                )
            else:
                hint = "check the spelling"
            raise UserInputError(
                f"conf field '{key}' is not a parameter of DAG {dag_id} ({hint}); "
                f"parameters: {', '.join(schemas)}"
            )
    values: dict[str, Any] = {}
    for name, schema in schemas.items():
        if name not in params:
            raise UserInputError(f"conf field '{name}' has no value and no default")
        values[name] = params[name]
        try:
            jsonschema.validate(values[name], dict(schema))
        except jsonschema.ValidationError as exc:
            if exc.validator == "not":  # ONE_LINE, whose own message quotes the schema
                raise UserInputError(
                    f"conf field '{name}' is {values[name]!r}, which holds a line break: "
                    "give the value on one line"
                ) from None
            hint = f" ({RUN_EXPORT_HINT})" if name == "export_to" else ""
            raise UserInputError(f"conf field '{name}': {exc.message}{hint}") from None
    return values
