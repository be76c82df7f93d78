"""The run checks of ``validate_conf``, the hook's URL, and small operator helpers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from automl_airflow.hooks import GreenplumHook
from automl_airflow.params import NAME_PATTERN, check_run_params, run_export_pattern, run_schemas
from automl_airflow.specs import EXPORT_PATTERN, MAX_TABLE_LEN, TABLE_PATTERN, load_spec
from automl_airflow.task_values import default_experiment_name, xcom_summary

from automl_core.errors import UserInputError
from automl_core.experiment.request import NAME_PATTERN as CORE_NAME_PATTERN
from tests.airflow.helpers import REPO, SPECS


def schemas(name: str = "random_digits.yaml") -> dict:
    return run_schemas(load_spec(SPECS / name, base_dir=REPO))


def defaults(name: str = "random_digits.yaml") -> dict:
    spec = load_spec(SPECS / name, base_dir=REPO)
    from automl_airflow.params import run_fields

    return {f.name: f.default for f in run_fields(spec)}


def test_good_params_pass_and_come_back() -> None:
    params = {**defaults(), "seed": 3, "epochs": 2}
    assert check_run_params(params, {"seed": 3, "epochs": 2}, schemas=schemas()) == params


def test_a_conf_key_that_is_no_param_is_refused() -> None:
    with pytest.raises(UserInputError, match="conf field 'epoch' is not a parameter"):
        check_run_params(defaults(), {"epoch": 2}, schemas=schemas())


def test_a_shape_knob_in_the_conf_points_to_the_spec() -> None:
    with pytest.raises(UserInputError, match="'R'.*changes the DAG's shape"):
        check_run_params(
            defaults("hyperband_digits.yaml"),
            {"R": 27},
            schemas=schemas("hyperband_digits.yaml"),
            shape_keys=("R", "eta", "skip_last"),
        )


def test_narrowing_a_grid_dag_says_grid_search_cannot_narrow() -> None:
    with pytest.raises(UserInputError, match="'narrow_from'.*grid search.*cannot narrow"):
        check_run_params(
            defaults("grid_digits.yaml"),
            {"narrow_from": "first"},
            schemas=schemas("grid_digits.yaml"),
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("table", "x y"),
        ("table", "t" * 57),  # its packed table would not fit PostgreSQL's 63 characters
        ("seed", 2**31),
        ("epochs", 0),
        ("export_to", "/a/../b"),
        ("cluster", "tcp://a:1"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field(field: str, value: object) -> None:
    params = {**defaults(), field: value}
    with pytest.raises(UserInputError, match=f"conf field '{field}'"):
        check_run_params(params, {field: value}, schemas=schemas())


def test_the_longest_table_a_run_accepts_can_be_packed() -> None:
    from automl_core.data.validate import packed_table_name

    longest = "t" * MAX_TABLE_LEN
    assert re.match(TABLE_PATTERN, longest) and not re.match(TABLE_PATTERN, longest + "t")
    assert len(packed_table_name(longest)) == 63


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("s3://bucket/prefix/run-1", True),
        ("s3://my.bucket", True),
        ("/srv/models/digits", True),
        ("exports/nightly", True),
        ("s3://UPPER/x", False),
        ("s3://b/../x", False),
        ("../x", False),
        ("x;rm -rf /", False),
        ("file:///etc", False),
    ],
)
def test_export_target_pattern(value: str, ok: bool) -> None:
    assert bool(re.match(EXPORT_PATTERN, value)) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("s3://bucket/prefix", True),
        ("exports/nightly", True),
        ("/srv/models/digits", True),  # the spec's own target
        ("/srv/models/digitsX", False),
        ("/srv/models", False),
        ("/etc", False),
        ("/tmp/x", False),
        ("../x", False),
    ],
)
def test_a_run_chooses_no_absolute_folder_but_the_specs_own(value: str, ok: bool) -> None:
    # A form or REST value may name S3 or a folder inside the project home, never
    # where else on a worker's disk the model is written.
    pattern = run_export_pattern("/srv/models/digits")
    assert bool(re.search(pattern, value)) is ok
    assert bool(re.search(run_export_pattern(None), value)) is (ok and not value.startswith("/"))
    params = {**defaults(), "export_to": value}
    if not (ok and not value.startswith("/")):
        with pytest.raises(UserInputError, match="conf field 'export_to'.*project home"):
            check_run_params(params, {"export_to": value}, schemas=schemas())


@pytest.mark.parametrize(
    "name", ["exp1", "digits-2024.01.01", "a:b+c", "-x", "x y", "", "é", "a" * 200, "a" * 201]
)
def test_the_form_accepts_the_experiment_names_the_core_accepts(name: str) -> None:
    assert bool(re.match(NAME_PATTERN, name)) is bool(CORE_NAME_PATTERN.match(name))


def test_the_default_experiment_name_is_stable_and_valid() -> None:
    name = default_experiment_name("automl_hyperband_digits", "manual__2026-01-02T03:04:05+00:00")
    assert name == default_experiment_name(
        "automl_hyperband_digits", "manual__2026-01-02T03:04:05+00:00"
    )
    assert CORE_NAME_PATTERN.match(name)
    assert CORE_NAME_PATTERN.match(default_experiment_name("d", "a run/with spaces?"))
    assert name == "automl_hyperband_digits__manual__2026-01-02T03:04:05+00:00"  # as it was


def test_runs_whose_ids_differ_only_where_the_name_rule_cuts_get_their_own_experiment() -> None:
    # Sanitised or cut to 200 characters alone, these pairs shared one experiment, and
    # the second run continued the first's.
    long_dag = "d" * 190
    pairs = [
        ("d", "a/b", "d", "a_b"),
        (long_dag, "manual__1", long_dag, "manual__2"),
        ("_nightly", "scheduled__1", "nightly", "scheduled__1"),  # '_' may start a DAG id
    ]
    for dag_a, run_a, dag_b, run_b in pairs:
        a, b = default_experiment_name(dag_a, run_a), default_experiment_name(dag_b, run_b)
        assert a != b
        assert CORE_NAME_PATTERN.match(a) and CORE_NAME_PATTERN.match(b)
        assert a == default_experiment_name(dag_a, run_a)


def test_xcom_summary_keeps_scalars_and_short_lists() -> None:
    out = xcom_summary({"a": 1, "b": [1, 2], "c": list(range(100)), "d": {"x": 1}, "e": None})
    assert out == {"a": 1, "b": [1, 2], "c_count": 100, "e": None}
    json.dumps(out)


def test_hook_builds_a_url_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "postgres",
        "host": "gp-master.example",
        "login": "automl",
        "password": "p@ss:w/rd",
        "schema": "analytics",
        "port": 5433,
        "extra": {"sslmode": "require", "cursor": "dictcursor"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AUTOML_DB", json.dumps(conn))
    url = GreenplumHook().get_automl_url()
    # The password is quoted; only libpq options travel from the extras.
    assert (
        url
        == "postgresql://automl:p%40ss%3Aw%2Frd@gp-master.example:5433/analytics?sslmode=require"
    )


def test_hook_without_a_connection_defers_to_automl_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_AUTOML_DB", raising=False)
    assert GreenplumHook().get_automl_url() is None
    assert GreenplumHook(automl_conn_id="other").get_conn_id() == "other"


def test_hook_reads_the_server_kind(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AUTOML_DB", db_url)
    hook = GreenplumHook()
    assert hook.get_automl_url().endswith(db_url.rsplit("/", 1)[1])
    # The test server is PostgreSQL, not Greenplum.
    assert hook.is_greenplum() is False


SPAWN_PROBE = """
import multiprocessing, sys, time
if __name__ != "__main__":
    # What `import airflow` does in a child of a task process: the metadata DB is blocked.
    raise RuntimeError("the parent's __main__ was re-run in the child")
sys.path[:0] = sys.argv[2:]
from automl_core.executors.spawn_safe import spawn_safe_main

context = multiprocessing.get_context(sys.argv[1])
if sys.argv[1] == "forkserver":
    context.set_forkserver_preload([])  # as local_cluster: the server imports no __main__

def start() -> int:
    child = context.Process(target=time.sleep, args=(0,))
    child.start()
    child.join(60)
    return child.exitcode

plain = start()
with spawn_safe_main():
    safe = start()
assert sys.modules["__main__"].__file__ == __file__, "__main__ was not restored"
print(plain, safe)
"""


@pytest.mark.timeout(300)  # a fresh interpreter importing airflow (its own limit: 120 s)
@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_new_workers_do_not_rerun_the_task_main(tmp_path: Path, method: str) -> None:
    # Local workers are forked from a fork server (spawned where there is none); either
    # way a child imports its parent's __main__, and in an Airflow task that is the
    # airflow command, which cannot be imported again in a child (see spawn_safe_main).
    script = tmp_path / "task_main.py"
    script.write_text(SPAWN_PROBE)
    done = subprocess.run(
        [sys.executable, str(script), method, str(REPO), str(REPO / "plugins")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    plain, safe = done.stdout.split()
    assert plain != "0", "the probe should fail without spawn_safe_main"
    assert safe == "0", done.stderr[-2000:]


@pytest.fixture
def aws_models(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The Airflow AWS connection ``aws_models`` to the S3 server on loopback (moto);
    the client settings that reach it."""
    aws = {"endpoint_url": s3_endpoint, "region_name": "us-east-1"}
    conn = {"conn_type": "aws", "login": "key", "password": "secret", "extra": aws}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MODELS", json.dumps(conn))
    monkeypatch.delenv("AIRFLOW_CONN_AUTOML_DB", raising=False)
    return aws


def test_finalize_exports_with_the_s3_client_of_its_aws_connection(
    monkeypatch: pytest.MonkeyPatch, automl_home: Path, aws_models: dict[str, str]
) -> None:
    import boto3
    from automl_airflow.operators import FinalizeOperator

    calls: list[dict] = []

    def fake_finalize(name: str, **kwargs: object) -> dict:
        # Stands in for automl_core's finalize: uses the client it is given.
        calls.append({"name": name, **kwargs})
        client: Any = kwargs["s3_client"]
        client.create_bucket(Bucket="models")
        client.put_object(Bucket="models", Key="digits/model.pt", Body=b"weights")
        return {"name": name, "best_trial": 3, "export": kwargs["export_to"]}

    monkeypatch.setattr("automl_core.experiment.finalize", fake_finalize)
    op = FinalizeOperator(
        task_id="finalize",
        experiment="exp-1",
        export_to="s3://models/digits",
        aws_conn_id="aws_models",
    )
    summary = op.execute(context={})  # type: ignore[arg-type]
    check = boto3.client(
        "s3", aws_access_key_id="key", aws_secret_access_key="secret", **aws_models
    )
    assert check.get_object(Bucket="models", Key="digits/model.pt")["Body"].read() == b"weights"
    (call,) = calls
    assert call["export_to"] == "s3://models/digits"
    assert call["report_dir"] == automl_home / "reports" / "exp-1"
    assert summary == {"name": "exp-1", "best_trial": 3, "export": "s3://models/digits"}


def test_the_aws_connection_s_client_checks_a_bucket_with_automl_s_timeouts(
    aws_models: dict[str, str],
) -> None:
    # validate_conf checks an s3:// target with it: a missing bucket was found by
    # finalize, after the whole search, and a silent endpoint took botocore's 3 x 60 s.
    from automl_airflow.operators import aws_s3_client

    from automl_core.artifacts.s3 import S3_CONNECT_TIMEOUT_S, S3_READ_TIMEOUT_S
    from automl_core.export import check_export_target

    client = aws_s3_client("aws_models")
    assert client.meta.config.connect_timeout == S3_CONNECT_TIMEOUT_S
    assert client.meta.config.read_timeout == S3_READ_TIMEOUT_S
    with pytest.raises(UserInputError, match="nobucket"):
        check_export_target("s3://nobucket/digits", s3_client=client)
    client.create_bucket(Bucket="checked")  # moto's buckets live as long as the process
    check_export_target("s3://checked/digits", s3_client=client)


def test_finalize_keeps_local_exports_inside_the_project_home(
    monkeypatch: pytest.MonkeyPatch, automl_home: Path
) -> None:
    from automl_airflow.operators import FinalizeOperator

    monkeypatch.delenv("AIRFLOW_CONN_AUTOML_DB", raising=False)
    calls: list[dict] = []

    def fake_finalize(name: str, **kwargs: object) -> dict:
        calls.append(kwargs)
        return {"name": name}

    monkeypatch.setattr("automl_core.experiment.finalize", fake_finalize)
    FinalizeOperator(task_id="f", experiment="e", export_to="exports/nightly").execute(
        context={}  # type: ignore[arg-type]
    )
    assert calls[0]["export_to"] == str(automl_home / "exports" / "nightly")
    assert calls[0]["s3_client"] is None


@pytest.mark.parametrize(("text", "value"), [("7", 7), ("7.0", 7), (" 12 ", 12), ("-3", -3)])
def test_an_integer_the_schema_accepts_the_task_accepts(text: str, value: int) -> None:
    # JSON Schema counts 7.0 as an integer, so the form and REST accept it (HTTP 200);
    # the task that renders it must not then fail.
    from automl_airflow.task_values import as_int

    assert as_int(text, "seed") == value


@pytest.mark.parametrize("text", ["7.5", "seven", "nan", "inf", ""])
def test_a_non_integer_is_refused_naming_the_field(text: str) -> None:
    from automl_airflow.task_values import as_int

    with pytest.raises(UserInputError, match="The value of seed is .* must be an integer"):
        as_int(text, "seed")


@pytest.mark.parametrize("field", ["export_to", "cluster"])
def test_an_empty_value_means_the_default_as_the_form_says(field: str) -> None:
    params = {**defaults(), field: ""}
    assert check_run_params(params, {field: ""}, schemas=schemas())[field] == ""
