"""The operators that build a run's ``SearchRequest``: validate the run, create the
experiment. Like every operator here (:mod:`automl_airflow.operators`), each
``execute()`` is one call into ``automl_core``, imported inside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from automl_airflow.operators import AutomlOperator, aws_s3_client
from automl_airflow.task_values import (
    as_int,
    default_experiment_name,
    export_target,
    opt_str,
    xcom_summary,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from automl_core.experiment import SearchRequest


class _SearchRequestOperator(AutomlOperator):
    """Base of the operators that build the run's ``SearchRequest``.

    :param budget: the spec's knobs that fix the DAG's shape.
    :param run_budget: the method's other knobs, by name (templated from the run's params,
        e.g. ``{"epochs": "{{ params.epochs }}"}``).
    :param narrow_from: an experiment whose space, narrowed to its ``narrow_top`` best
        trials, this run searches instead of ``space`` (empty: ``space``); a name, read
        from the database, never a path.
    """

    template_fields: Sequence[str] = (
        "dataset",
        "seed",
        "run_budget",
        "experiment_name",
        "narrow_from",
        "narrow_top",
    )

    def __init__(
        self,
        *,
        dataset: str,
        space: Mapping[str, Any],
        method: str,
        budget: Mapping[str, int],
        seed: int | str = 0,
        run_budget: Mapping[str, int | str] | None = None,
        experiment_name: str | None = None,
        workers: int | None = None,
        visit_order: str = "seeded",
        narrow_from: str | None = None,
        narrow_top: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.visit_order = visit_order
        self.narrow_from = narrow_from
        self.narrow_top = narrow_top
        self.dataset = dataset
        self.space = dict(space)
        self.method = method
        self.budget = dict(budget)
        self.seed = seed
        self.run_budget = dict(run_budget or {})
        self.experiment_name = experiment_name
        self.workers = workers

    def search_request(self, context: Context) -> SearchRequest:
        from automl_core.experiment import SearchRequest

        budget: dict[str, Any] = dict(self.budget)
        for key, value in self.run_budget.items():
            if opt_str(value) is not None:
                budget[key] = as_int(value, key)
        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        request = SearchRequest.with_budget(
            budget,
            dataset=str(self.dataset),
            space=self.space,
            method=self.method,
            name=opt_str(self.experiment_name) or default_experiment_name(dag_id, run_id),
            seed=as_int(self.seed, "seed"),
            workers=self.workers,
            visit_order=self.visit_order,
            airflow_run_id=run_id,
        )
        parent = opt_str(self.narrow_from)
        if parent is None:
            return request
        from automl_core.experiment.narrowing import narrow_request
        from automl_core.space.narrow import DEFAULT_TOP

        top = opt_str(self.narrow_top)
        top_k = DEFAULT_TOP if top is None else as_int(top, "narrow_top")
        request, narrowed = narrow_request(request, parent, top=top_k, db_url=self.db_url)
        if narrowed is not None:
            self.log.info("%s\n%s", narrowed.summary(), "\n".join(map(str, narrowed.changes)))
        return request


class ValidateConfOperator(_SearchRequestOperator):
    """Fail the run before anything is written when its params or conf are wrong.

    Re-checks every param against its schema, refuses conf keys that are no param, and
    validates the whole search request (rules that span fields) with automl_core.

    :param schemas: the JSON schema of each param (``params.run_schemas``).
    :param shape_keys: spec keys that fix the DAG's shape, named in the error when a
        conf tries to set one.
    :param aws_conn_id: the AWS connection ``finalize`` exports with, to check an
        ``s3://`` target's bucket with the same client.
    """

    ui_color = "#fdf3e8"

    def __init__(
        self,
        *,
        schemas: Mapping[str, Mapping[str, Any]],
        shape_keys: Sequence[str] = (),
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schemas = {k: dict(v) for k, v in schemas.items()}
        self.shape_keys = tuple(shape_keys)
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from automl_airflow.params import check_run_params

        dag_run = context["dag_run"]
        values = check_run_params(
            context["params"],
            getattr(dag_run, "conf", None) or {},
            schemas=self.schemas,
            shape_keys=self.shape_keys,
            dag_id=context["dag"].dag_id,
        )
        request = self.search_request(context)
        request.validate()
        from automl_core.experiment.api import check_experiment_name

        # A name taken by another search would fail create_experiment, after prepare_data.
        check_experiment_name(request, db_url=self.db_url)
        target = export_target(values.get("export_to"))
        if target is not None:
            # A missing bucket or a folder holding files automl did not write would fail
            # finalize, after the whole search.
            from automl_core.export import check_export_target

            s3 = target.startswith("s3://") and self.aws_conn_id
            check_export_target(target, s3_client=aws_s3_client(self.aws_conn_id) if s3 else None)
        self.log.info("Run accepted: experiment %s, params %s", request.name, values)
        return {"experiment": request.name, "method": request.method, "dataset": request.dataset}


class CreateExperimentOperator(_SearchRequestOperator):
    """Create the experiment (or find it, when this run created it already)."""

    def execute(self, context: Context) -> dict[str, Any]:
        from automl_core.experiment import create_experiment

        return xcom_summary(create_experiment(self.search_request(context), db_url=self.db_url))
