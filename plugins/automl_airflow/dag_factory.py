"""Build one DAG per spec: the shape of a search as Airflow tasks.

Every DAG starts with the same three steps, and its engine ends with ``finalize``::

    validate_conf >> prepare_data >> create_experiment >> engine >> finalize
                                     create_experiment >> [groups...]

``engine`` is the search's one training engine (it owns the workers, takes the training
pool's slot, and trains every rung and batch together), so the search is complete when
it ends and ``finalize`` follows it alone: the groups record the same steps a little
later (each of their tasks passes through the triggerer's one-second loops) and need not
hold the report back. Beside the engine, the groups map the core's search plan
(``automl_core.experiment.plan.search_plan``) to tasks:

* Hyperband: a task group per bracket ``s``: ``train_rung_0 >> promote_rung_0 >>
  train_rung_1 >> ...``. A training task asks the engine for its rung and waits,
  deferred, holding no worker slot; a promotion task records the survivors.
* Hyperopt: a task group per batch, ``propose >> train``, in sequence: each batch is
  proposed from every result before it.
* Grid and random: the same groups, independent of one another.

Which groups a search has is its method's (``automl_core.search.methods``); here a
group that promotes becomes a bracket's tasks and any other a batch's.

The shape is computed from the spec at parse time with automl_core's pure functions;
nothing here touches a database or imports torch, and no search logic lives here.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, BaseOperator, TaskGroup, chain

from automl_airflow.operators import (
    FinalizeOperator,
    PrepareDataOperator,
    PromoteRungOperator,
    ProposeBatchOperator,
    TrainingEngineOperator,
)
from automl_airflow.params import build_params, run_knobs, run_schemas
from automl_airflow.request_operators import CreateExperimentOperator, ValidateConfOperator
from automl_airflow.specs import DagSpec, SpecError, load_spec
from automl_airflow.training_operators import TrainBatchOperator, TrainRungOperator
from automl_core.errors import UserInputError

if TYPE_CHECKING:
    from automl_core.experiment.plan import PlanGroup, SearchPlan

log = logging.getLogger(__name__)

# A fixed start in the past: with catchup off only the latest interval is ever run.
START_DATE = datetime(2024, 1, 1, tzinfo=UTC)
# Steps other than training are quick and idempotent: one retry covers a dropped
# connection without hiding a real error for long.
STEP_RETRIES = 1
STEP_RETRY_DELAY = timedelta(seconds=10)
INVALID_SPEC_TAG = "invalid-spec"


class InvalidSpecWarning(UserWarning):
    """A spec file could not be turned into a DAG (the message says which and why)."""


def build_dag(spec: DagSpec) -> DAG:
    """The DAG of one validated spec."""
    shape_keys = tuple(k for k in spec.budget if k not in run_knobs(spec))
    doc = (
        f"**{spec.method}** search on table `{spec.dataset}` "
        f"(spec `{spec.source.name}`, space `{spec.space_ref}`, budget {dict(spec.budget)}).\n\n"
        "The form changes what does not change the DAG's shape; the budget knobs that do "
        f"({', '.join(shape_keys) or 'none'}) are set in the spec file."
    )
    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        doc_md=doc,
        schedule=spec.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=sorted({"automl", spec.method, *spec.tags}),
        params=build_params(spec),
        default_args={"retries": STEP_RETRIES, "retry_delay": STEP_RETRY_DELAY},
    ) as dag:
        request_args = _request_args(spec)
        validate = ValidateConfOperator(
            task_id="validate_conf",
            schemas=run_schemas(spec),
            shape_keys=shape_keys,
            aws_conn_id=spec.aws_conn_id,
            retries=0,  # a bad conf stays bad
            **request_args,
        )
        prepare = PrepareDataOperator(
            task_id="prepare_data",
            table="{{ params.table }}",
            partitions=spec.partitions,
            load_if_missing="{{ params.load_if_missing or '' }}",
        )
        create = CreateExperimentOperator(task_id="create_experiment", **request_args)
        finalize = FinalizeOperator(
            task_id="finalize",
            export_to="{{ params.export_to or '' }}",
            report_dir=spec.report_dir,
            aws_conn_id=spec.aws_conn_id,
        )
        engine = TrainingEngineOperator(task_id="engine", **_engine_args(spec))
        chain(validate, prepare, create, engine, finalize)
        plan = _plan(spec)
        groups = [_bracket_group(g) if g.promotes else _batch_group(g) for g in plan.groups]
        if any(g.after is not None for g in plan.groups):
            chain(create, *groups)
        else:
            # mypy cannot see that a list of groups is a valid dependency target.
            create >> groups  # type: ignore[operator]
    return dag


def _request_args(spec: DagSpec) -> dict[str, Any]:
    """What ``validate_conf`` and ``create_experiment`` build the SearchRequest from."""
    from automl_core.search.methods import get_method

    run = run_knobs(spec)
    # A method whose plan follows its space's size (grid) has no narrowing fields.
    narrowable = get_method(spec.method).narrowable
    return {
        "dataset": "{{ params.table }}",
        "space": spec.space,
        "method": spec.method,
        "budget": {k: v for k, v in spec.budget.items() if k not in run},
        "seed": "{{ params.seed }}",
        "run_budget": {k: f"{{{{ params.{k} }}}}" for k in run},
        "experiment_name": "{{ params.experiment_name or '' }}",
        "workers": spec.workers,
        "visit_order": spec.visit_order,
        "narrow_from": "{{ params.narrow_from or '' }}" if narrowable else None,
        "narrow_top": "{{ params.narrow_top }}" if narrowable else None,
    }


def _engine_args(spec: DagSpec) -> dict[str, Any]:
    """The engine: the training pool's slot, the training queue, retries that resume."""
    args: dict[str, Any] = {
        "pool": spec.pool,
        "pool_slots": 1,
        "retries": spec.retries,
        "retry_delay": timedelta(seconds=spec.retry_delay_seconds),
        # A name from the deployment's list, resolved to an address when the task runs.
        "cluster": "{{ params.cluster or '' }}",
        "clusters": dict(spec.clusters),
        "default_cluster": spec.cluster,
        "workers": spec.workers,
        # Queued before the groups' tasks, which wait for it.
        "priority_weight": 1000,
        "weight_rule": "absolute",
    }
    if spec.queue:
        args["queue"] = spec.queue
    return args


# The most task groups (brackets, batches) one DAG may have. Each costs the DAG processor
# 1-2 ms on every parse of the DAG file, which holds every DAG (measured: 100 groups
# 0.11 s, 10,000 groups 19 s), and the graph a row.
MAX_TASK_GROUPS = 100


def _plan(spec: DagSpec) -> SearchPlan:
    from automl_core.experiment.plan import search_plan
    from automl_core.experiment.request import SearchRequest

    try:
        request = SearchRequest.with_budget(
            spec.budget, dataset=spec.dataset, space=spec.space, method=spec.method
        )
        plan = search_plan(request)
    except UserInputError as exc:  # the budget and the space together; it names the key
        raise SpecError(spec.source, None, str(exc)) from None
    if len(plan.groups) > MAX_TASK_GROUPS:
        raise SpecError(
            spec.source,
            "budget",
            f"makes {len(plan.groups)} task groups, but a DAG has at most {MAX_TASK_GROUPS}: "
            "past that its graph is unreadable and parsing the DAG file slows every DAG in "
            "it. Raise budget.batch_size (grid, random) or lower budget.batches (hyperopt), "
            "or run the search with `automl run`.",
        )
    return plan


def _bracket_group(group: PlanGroup) -> TaskGroup:
    shape = ", ".join(f"{r.n}x{r.target_epoch}" for r in group.rungs)
    with TaskGroup(
        group_id=group.group_id,
        tooltip=f"bracket s={group.index}: configurations x epochs per rung: {shape}",
    ) as task_group:
        steps: list[BaseOperator] = []
        for rung in group.rungs:
            steps.append(
                TrainRungOperator(
                    task_id=f"train_rung_{rung.rung}", bracket=group.index, rung=rung.rung
                )
            )
            steps.append(
                PromoteRungOperator(
                    task_id=f"promote_rung_{rung.rung}", bracket=group.index, rung=rung.rung
                )
            )
        chain(*steps)
    return task_group


def _batch_group(group: PlanGroup) -> TaskGroup:
    rung = group.rungs[0]
    with TaskGroup(
        group_id=group.group_id,
        tooltip=f"batch {group.index}: {rung.n} configurations x {rung.target_epoch} epochs",
    ) as task_group:
        propose = ProposeBatchOperator(task_id="propose", batch=group.index)
        train = TrainBatchOperator(task_id="train", batch=group.index)
        propose >> train
    return task_group


def build_invalid_spec_dag(path: Path, error: Exception, dag_id: str | None = None) -> DAG:
    """A stand-in DAG that shows a broken spec in the UI and fails with its error.

    It keeps the spec's ``dag_id`` when that much could be read, so the DAG a user
    expects is still listed, paused, with the error as its description.
    """
    message = str(error)
    with DAG(
        dag_id=dag_id or f"automl_invalid_spec__{_safe_stem(path)}",
        description=f"INVALID SPEC: {message}"[:1000],
        doc_md=f"The spec file `{path}` is invalid:\n\n```\n{message}\n```\n\nFix it; "
        "the DAG is rebuilt on the next parse.",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        is_paused_upon_creation=True,
        tags=["automl", INVALID_SPEC_TAG],
    ) as dag:
        _InvalidSpecOperator(task_id="invalid_spec", message=message)
    return dag


class _InvalidSpecOperator(BaseOperator):
    """Fails with the spec error, so a triggered run explains itself in its log."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise SpecError("spec", None, self.message)


def _safe_stem(path: Path) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in path.stem)


def dags_from_specs(spec_dir: Path, *, base_dir: Path) -> dict[str, DAG]:
    """One DAG per ``*.yaml``/``*.yml`` file in ``spec_dir``, keyed by dag id.

    A broken spec never hides the others: it becomes a paused stand-in DAG (see
    :func:`build_invalid_spec_dag`) and an :class:`InvalidSpecWarning`, which the
    DAG processor logs and ``DagBag.captured_warnings`` keeps.
    """
    dags: dict[str, DAG] = {}
    sources: dict[str, Path] = {}
    paths = sorted([*spec_dir.glob("*.yaml"), *spec_dir.glob("*.yml")])
    for path in paths:
        dag_id: str | None = None
        try:
            spec = load_spec(path, base_dir=base_dir)
            dag_id = spec.dag_id
            if dag_id in sources:
                raise SpecError(path, "dag_id", f"{dag_id!r} is already used by {sources[dag_id]}")
            dag = build_dag(spec)
        except Exception as exc:  # one bad file must not take the others down
            warnings.warn(InvalidSpecWarning(str(exc)), stacklevel=2)
            log.error("Invalid spec %s: %s", path, exc)
            dag_id = dag_id or _peek_dag_id(path)
            dag = build_invalid_spec_dag(path, exc, None if dag_id in sources else dag_id)
        dags[dag.dag_id] = dag
        sources[dag.dag_id] = path
    return dags


def _peek_dag_id(path: Path) -> str | None:
    """The spec's dag_id if the file is YAML with a valid one (for the stand-in DAG)."""
    import yaml

    from automl_airflow.specs import DAG_ID_RE

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    value = raw.get("dag_id") if isinstance(raw, Mapping) else None
    return value if isinstance(value, str) and DAG_ID_RE.match(value) else None


__all__ = ["build_dag", "build_invalid_spec_dag", "dags_from_specs"]
