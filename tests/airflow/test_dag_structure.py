"""The shape of the DAGs the factory builds: groups, task order, params, schedule. No run."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow.sdk import DAG
from airflow.sdk.exceptions import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization
from automl_airflow.dag_factory import MAX_TASK_GROUPS, build_dag
from automl_airflow.specs import SpecError, load_spec

from tests.airflow.helpers import REPO, SPECS


def example(name: str) -> DAG:
    return build_dag(load_spec(SPECS / name, base_dir=REPO))


def spec_dag(tmp_path: Path, **overrides: object) -> DAG:
    """A DAG from the Hyperband example spec with some keys replaced."""
    raw = yaml.safe_load((SPECS / "hyperband_digits.yaml").read_text())
    raw.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return build_dag(load_spec(path, base_dir=REPO))


def task(dag: DAG, task_id: str) -> Any:
    """A task with its operator's own attributes (``get_task`` is typed as the base)."""
    return dag.get_task(task_id)


def serialized(dag: DAG) -> Any:
    """The DAG as the scheduler and the API server see it (serialized and back)."""
    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


def chain_of(dag: DAG, task_ids: list[str]) -> None:
    """Assert each task is the only direct upstream of the next one."""
    for before, after in zip(task_ids, task_ids[1:], strict=False):
        assert dag.get_task(after).upstream_task_ids == {before}, (before, after)


def group_ids(dag: DAG) -> list[str]:
    return [
        k for k in dag.task_group.children if "_" in k and k.split("_")[0] in ("bracket", "batch")
    ]


# --- Hyperband ------------------------------------------------------------------------


def test_hyperband_has_a_group_per_bracket_and_train_promote_per_rung() -> None:
    dag = example("hyperband_digits.yaml")
    # R=9, eta=3 (Li et al. 2018, table 1): s_max = 2; brackets have 3, 2 and 1 rungs.
    rungs = {"bracket_2": 3, "bracket_1": 2, "bracket_0": 1}
    assert sorted(group_ids(dag)) == sorted(rungs)
    for group, n in rungs.items():
        ids = []
        for i in range(n):
            ids += [f"{group}.train_rung_{i}", f"{group}.promote_rung_{i}"]
        group_node: Any = dag.task_group.children[group]
        assert set(group_node.children) == set(ids)
        chain_of(dag, ids)
        assert dag.get_task(ids[0]).upstream_task_ids == {"create_experiment"}
        assert dag.get_task(ids[-1]).downstream_task_ids == set()
        for i in range(n):
            train = task(dag, f"{group}.train_rung_{i}")
            promote = task(dag, f"{group}.promote_rung_{i}")
            assert (train.bracket, train.rung) == (int(group[-1]), i)
            assert (promote.bracket, promote.rung) == (int(group[-1]), i)
    # Brackets are independent: nothing in one bracket waits for another; the engine
    # runs beside them all, and the search is complete when it ends.
    chain_of(dag, ["validate_conf", "prepare_data", "create_experiment", "engine", "finalize"])
    assert len(dag.tasks) == 5 + sum(2 * n for n in rungs.values())


def test_one_engine_task_per_run_beside_the_groups() -> None:
    for name in ("hyperband_digits.yaml", "hyperopt_digits.yaml", "random_digits.yaml"):
        dag = example(name)
        engines = [t for t in dag.tasks if type(t).__name__ == "TrainingEngineOperator"]
        assert [t.task_id for t in engines] == ["engine"]
        assert dag.get_task("engine").downstream_task_ids == {"finalize"}
        # Queued before the groups' tasks, which wait for it.
        assert dag.get_task("engine").priority_weight > max(
            t.priority_weight for t in dag.tasks if t.task_id != "engine"
        )


def test_skip_last_drops_the_last_rungs(tmp_path: Path) -> None:
    dag = spec_dag(tmp_path, budget={"R": 27, "eta": 3, "skip_last": 1})
    # s_max = 3; skip_last=1 leaves brackets 3, 2, 1 with 3, 2 and 1 rungs.
    assert sorted(group_ids(dag)) == ["bracket_1", "bracket_2", "bracket_3"]
    assert "bracket_3.train_rung_2" in dag.task_dict
    assert "bracket_3.train_rung_3" not in dag.task_dict
    assert "bracket_1.promote_rung_0" in dag.task_dict
    assert "bracket_1.train_rung_1" not in dag.task_dict


def test_the_engine_takes_the_pool_retries_and_queue_and_waiting_tasks_do_not(
    tmp_path: Path,
) -> None:
    dag = spec_dag(tmp_path, queue="gpu", retries=3, retry_delay_seconds=5)
    engine = task(dag, "engine")
    assert engine.pool == "automl_training"
    assert engine.pool_slots == 1
    assert engine.queue == "gpu"
    assert engine.retries == 3
    assert engine.retry_delay == timedelta(seconds=5)
    assert engine.cluster == "{{ params.cluster or '' }}"
    for task_id in ("bracket_2.train_rung_1", "bracket_2.promote_rung_1"):
        waiting = dag.get_task(task_id)
        assert waiting.pool != "automl_training"
        assert waiting.queue != "gpu"
    assert dag.get_task("validate_conf").retries == 0


def test_default_queue_when_the_spec_sets_none() -> None:
    dag = example("hyperband_digits.yaml")
    assert dag.get_task("engine").queue == dag.get_task("finalize").queue


def test_a_dag_has_at_most_max_task_groups(tmp_path: Path) -> None:
    # Random search of 10,000 trials in batches of 1 made 10,000 groups: 19 s of every
    # parse of the DAG file, which holds every DAG. At the limit it builds; past it, an error
    # that names the key and the fix (the DAG file makes it a stand-in DAG).
    edge = dict(method="random", budget={"epochs": 1, "n": MAX_TASK_GROUPS, "batch_size": 1})
    assert len(group_ids(spec_dag(tmp_path, **edge))) == MAX_TASK_GROUPS
    past = dict(method="random", budget={"epochs": 1, "n": 10_000, "batch_size": 1})
    with pytest.raises(SpecError, match=r"key 'budget': makes 10000 task groups.*batch_size"):
        spec_dag(tmp_path, **past)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"budget": {"R": 9, "eta": 3, "skip_last": 3}}, r"skip_last is 3, but must be <= s_max"),
        ({"method": "grid", "budget": {"epochs": 1}}, r"a range .* which a grid cannot"),
    ],
)
def test_a_budget_or_space_the_search_refuses_names_the_spec_file(
    tmp_path: Path, overrides: dict[str, Any], problem: str
) -> None:
    # Spec errors name their file (a DAG file of many specs says which one is wrong).
    with pytest.raises(SpecError, match=rf"^{tmp_path / 'spec.yaml'}: .*{problem}"):
        spec_dag(tmp_path, **overrides)


def test_hyperband_params_leave_out_the_shape_knobs() -> None:
    params = example("hyperband_digits.yaml").params
    assert set(params) == {
        "table",
        "load_if_missing",
        "seed",
        "experiment_name",
        "export_to",
        "cluster",
        "narrow_from",
        "narrow_top",
    }


def test_params_carry_types_bounds_enums_titles_and_descriptions() -> None:
    params = example("hyperopt_digits.yaml").params
    table = params.get_param("table")
    assert table.value == "digits"
    assert table.schema["pattern"] == "^[A-Za-z_][A-Za-z0-9_]{0,55}$"
    assert table.schema["title"] == "Table"
    assert table.description
    seed = params.get_param("seed").schema
    assert (seed["type"], seed["minimum"], seed["maximum"]) == ("integer", 0, 2**31 - 1)
    epochs = params.get_param("epochs")
    assert epochs.value == 3
    assert (epochs.schema["minimum"], epochs.schema["maximum"]) == (1, 1000)
    assert params.get_param("load_if_missing").schema["enum"] == [None, "digits", "signals"]
    assert params.get_param("export_to").schema["type"] == ["null", "string"]
    for name in params:
        assert params.get_param(name).schema.get("title"), name
        assert params.get_param(name).description, name


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"table": "digits; DROP TABLE x"}, "table"),
        ({"table": "1digits"}, "table"),
        ({"seed": -1}, "seed"),
        ({"seed": "zero"}, "seed"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 5000}, "epochs"),
        ({"export_to": "../outside"}, "export_to"),
        ({"export_to": "s3://Bad_Bucket/x"}, "export_to"),
        ({"cluster": "tcp://host"}, "cluster"),
        # An address, even a well-formed one, is never a choice: only the deployment's names.
        ({"cluster": "tcp://203.0.113.5:8786"}, "cluster"),
        ({"load_if_missing": "csv:/etc/passwd"}, "load_if_missing"),
        ({"experiment_name": "-starts-with-dash"}, "experiment_name"),
    ],
)
def test_airflow_rejects_a_bad_conf_naming_the_param(conf: dict, field: str) -> None:
    # The check the API server makes when a run is triggered (form or REST conf), on the
    # serialized DAG it holds: the schemas must survive serialization too.
    params = serialized(example("hyperopt_digits.yaml")).params.deep_merge(conf)
    with pytest.raises(ParamValidationError, match=f"param {field}"):
        params.validate()


def test_airflow_accepts_a_good_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_DASK_CLUSTERS", '{"gpu": "tcp://dask-scheduler:8786"}')
    conf = {
        "table": "my_digits",
        "seed": 7,
        "epochs": 2,
        "experiment_name": "nightly-2024.01.01",
        "export_to": "s3://models/digits/best",
        "cluster": "gpu",
        "load_if_missing": None,
        "narrow_from": "nightly-2023.12.31",
        "narrow_top": 3,
    }
    values = serialized(example("hyperopt_digits.yaml")).params.deep_merge(conf).validate()
    assert values == conf


# --- batches -------------------------------------------------------------------------


def batch_ids(n: int) -> list[str]:
    return [f"batch_{b}" for b in range(n)]


def test_hyperopt_batches_run_in_sequence() -> None:
    dag = example("hyperopt_digits.yaml")
    assert sorted(group_ids(dag)) == batch_ids(3)
    chain_of(
        dag,
        [
            "create_experiment",
            "batch_0.propose",
            "batch_0.train",
            "batch_1.propose",
            "batch_1.train",
            "batch_2.propose",
            "batch_2.train",
        ],
    )
    assert dag.get_task("batch_2.train").downstream_task_ids == set()
    assert dag.get_task("finalize").upstream_task_ids == {"engine"}
    assert [task(dag, f"batch_{b}.train").batch for b in range(3)] == [0, 1, 2]


@pytest.mark.parametrize(("name", "batches"), [("random_digits.yaml", 2), ("grid_digits.yaml", 2)])
def test_grid_and_random_batches_are_independent(name: str, batches: int) -> None:
    # random: n=8 in batches of 4; grid: 2 x 2 x 2 = 8 configurations in batches of 4.
    dag = example(name)
    assert sorted(group_ids(dag)) == batch_ids(batches)
    for b in range(batches):
        chain_of(dag, ["create_experiment", f"batch_{b}.propose", f"batch_{b}.train"])
        assert dag.get_task(f"batch_{b}.train").downstream_task_ids == set()
    assert dag.get_task("finalize").upstream_task_ids == {"engine"}


# --- DAG level -----------------------------------------------------------------------


def test_manual_dags_have_no_schedule_and_one_run_at_a_time() -> None:
    dag = example("hyperband_digits.yaml")
    assert dag.schedule is None
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"automl", "hyperband", "digits"} <= set(dag.tags)


def test_nightly_dag_runs_at_two_without_catchup() -> None:
    dag = example("nightly_hyperband_digits.yaml")
    assert dag.schedule == "0 2 * * *"
    timetable = serialized(dag).timetable
    assert timetable.summary == "0 2 * * *"
    assert timetable.description == "At 02:00"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert "nightly" in dag.tags
    assert dag.params["export_to"] == "exports/nightly"


def test_templates_read_the_params_and_the_created_experiment() -> None:
    dag = example("hyperband_digits.yaml")
    create = task(dag, "create_experiment")
    assert create.dataset == "{{ params.table }}"
    assert create.seed == "{{ params.seed }}"
    assert "dataset" in create.template_fields and "seed" in create.template_fields
    train = task(dag, "bracket_1.train_rung_0")
    assert "create_experiment" in train.experiment
    assert "experiment" in train.template_fields
    assert task(dag, "finalize").export_to == "{{ params.export_to or '' }}"


# --- tasks that live in the triggerer -----------------------------------------------------


@pytest.mark.parametrize("spec", ["hyperband_digits.yaml", "hyperopt_digits.yaml"])
def test_training_and_promotion_tasks_start_in_the_triggerer(spec: str) -> None:
    from airflow.sdk._shared.module_loading import import_string
    from airflow.serialization.enums import Encoding

    dag = serialized(example(spec))
    started = {t.task_id: t for t in dag.tasks if t.start_from_trigger}
    expected = {
        t.task_id
        for t in dag.tasks
        if t.task_id.rsplit(".", 1)[-1].startswith(("train", "promote_rung"))
    }
    assert expected and set(started) == expected
    for task_id, t in started.items():
        args = t.start_trigger_args
        group, step = task_id.split(".")
        index = int(group.split("_")[1])
        where = {"batch": index} if group.startswith("batch") else {"bracket": index}
        if step.startswith(("train_rung", "promote_rung")):
            where["rung"] = int(step.rsplit("_", 1)[1])
        # Serialized as the scheduler stores it (the triggerer decodes the same way).
        kwargs = args.trigger_kwargs.get(Encoding.VAR, args.trigger_kwargs)
        assert {k: kwargs[k] for k in where} == where, task_id
        # No template: the trigger reads create_experiment's XCom itself.
        assert "experiment" not in kwargs
        assert kwargs.get("submit", False) is step.startswith("train")
        # The trigger class is ours, takes these kwargs and serializes them back.
        trigger = import_string(args.trigger_cls)(**kwargs)
        assert args.trigger_cls.startswith("automl_airflow.triggers.")
        assert trigger.serialize() == (args.trigger_cls, {**trigger.serialize()[1], **kwargs})
        assert trigger.experiment_task == "create_experiment"
        assert "experiment" in t.template_fields and args.timeout is not None
