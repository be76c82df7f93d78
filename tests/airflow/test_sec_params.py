"""The run form's patterns refuse a value with a newline: Python's ``jsonschema`` (what
Airflow checks a REST conf with, and what ``check_run_params`` repeats) searches a
``pattern`` with ``re.search``, where ``$`` also matches before a final newline."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import jsonschema
import pytest
from automl_airflow.params import build_params, check_run_params, run_schemas
from automl_airflow.specs import load_spec

from automl_core.errors import UserInputError
from tests.airflow.helpers import REPO, SPECS

SPEC = "random_digits.yaml"  # narrowable: it has every text field of the form
BAD = {
    "table": "digits\n",
    "experiment_name": "nl\n",
    "export_to": "s3://bucket/x\n",
    "narrow_from": "first\n",
}


def _spec() -> Any:
    return load_spec(SPECS / SPEC, base_dir=REPO)


@pytest.mark.parametrize(("field", "value"), BAD.items())
def test_a_text_field_ending_in_a_newline_is_refused(field: str, value: str) -> None:
    """`{"table": "digits\\n"}` passed the form's and the REST conf's schema."""
    schemas = run_schemas(_spec())
    params = {**{name: p.value for name, p in build_params(_spec()).items()}, field: value}
    with pytest.raises(
        UserInputError, match=f"conf field '{field}' is .*, which holds a line break"
    ):
        check_run_params(params, {field: value}, schemas=schemas)
    # Airflow's own check of a triggered conf (Param.resolve, jsonschema) refuses it too.
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        build_params(_spec())[field].resolve(value=value)


def test_the_same_fields_without_the_newline_pass() -> None:
    good = {field: value.rstrip("\n") for field, value in BAD.items()}
    params = {**{name: p.value for name, p in build_params(_spec()).items()}, **good}
    assert check_run_params(params, good, schemas=run_schemas(_spec())) == params


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run browser regexps")
def test_a_browser_reads_every_text_rule_as_python_does() -> None:
    """The form reads each pattern as an ECMA-262 regular expression (with the 'v' flag):
    the pattern and the one-line rule must compile there and agree with jsonschema."""
    schemas = {n: s for n, s in run_schemas(_spec()).items() if "pattern" in s}
    assert set(BAD) <= set(schemas)
    rules = {n: [s["pattern"], s["not"]["pattern"]] for n, s in schemas.items()}
    values = [*BAD.values(), *(v.rstrip("\n") for v in BAD.values()), "", "\n", "a\nb", "x\r"]
    script = (
        "const [rules, values] = process.argv.slice(1).map(JSON.parse);"
        "console.log(JSON.stringify(Object.fromEntries(Object.entries(rules).map("
        "([k, [yes, no]]) => [k, values.map(v => new RegExp(yes, 'v').test(v) && "
        "!new RegExp(no, 'v').test(v))]))));"
    )
    out = subprocess.run(
        ["node", "-e", script, json.dumps(rules), json.dumps(values)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    python = {
        n: [jsonschema.Draft202012Validator(s).is_valid(v) for v in values]
        for n, s in schemas.items()
    }
    assert json.loads(out.stdout) == python
    assert not any(python[field][values.index(value)] for field, value in BAD.items())
