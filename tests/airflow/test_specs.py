"""Spec files: what is accepted, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from automl_airflow.specs import SpecError, load_spec

from tests.airflow.helpers import REPO, SPECS

GOOD: dict[str, Any] = {
    "dag_id": "t_random",
    "dataset": "digits",
    "space": "examples/spaces/digits.yaml",
    "method": "random",
    "budget": {"n": 6, "batch_size": 3},
}


def write(tmp_path: Path, content: object, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def test_every_example_spec_is_valid() -> None:
    specs = [load_spec(p, base_dir=REPO) for p in sorted(SPECS.glob("*.yaml"))]
    methods = {s.method for s in specs}
    assert methods == {"grid", "random", "hyperband", "hyperopt"}
    hyperband = next(s for s in specs if s.dag_id == "automl_hyperband_digits")
    assert dict(hyperband.budget) == {"R": 9, "eta": 3, "skip_last": 0}
    hyperopt = next(s for s in specs if s.method == "hyperopt")
    assert (hyperopt.budget["batches"], hyperopt.budget["batch_size"]) == (3, 4)
    assert [s.schedule for s in specs if s.schedule] == ["0 2 * * *"]


def test_defaults_fill_the_budget_and_the_space_is_parsed(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD), base_dir=REPO)
    assert dict(spec.budget) == {"epochs": 5, "n": 6, "batch_size": 3}
    assert spec.space_ref == "examples/spaces/digits.yaml"
    assert "architecture" in spec.space
    assert (spec.partitions, spec.seed, spec.pool, spec.schedule) == (2, 0, "automl_training", None)


def test_an_inline_space_is_accepted(tmp_path: Path) -> None:
    inline = {**GOOD, "space": {"architecture": "mlp", "lr": [0.01, 0.1], "optimizer": "sgd"}}
    spec = load_spec(write(tmp_path, inline), base_dir=REPO)
    assert spec.space_ref == "inline"
    assert spec.space["lr"] == [0.01, 0.1]


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"method": "bayes"}, "method", "not one of"),
        ({"dag_id": "bad id!"}, "dag_id", "not valid"),
        ({"dataset": "digits;drop"}, "dataset", "not valid"),
        ({"budget": {"R": 9}}, "budget.R", "not used by method random"),
        ({"budget": {"n": 0}}, "budget.n", "between 1"),
        ({"budget": {"n": "8"}}, "budget.n", "must be an integer"),
        ({"budget": {"n": True}}, "budget.n", "must be an integer"),
        ({"budget": [1, 2]}, "budget", "must be a mapping"),
        ({"schedule": "every night"}, "schedule", "not a cron expression"),
        ({"space": "../outside.yaml"}, "space", "inside"),
        ({"space": "/etc/passwd.yaml"}, "space", "inside"),
        ({"space": "examples/spaces/missing.yaml"}, "space", "does not exist"),
        ({"space": "pyproject.toml"}, "space", "must end in"),
        ({"space": {"lr": {"uniform": [1]}}}, "space", ""),
        ({"load_if_missing": "csv:/etc/passwd"}, "load_if_missing", "not a built-in"),
        ({"export_to": "../x"}, "export_to", "no '..'"),
        ({"cluster": "localhost"}, "cluster", "tcp://host:port"),
        ({"partitions": 0}, "partitions", "between 1"),
        ({"tags": "digits"}, "tags", "list"),
        ({"retires": 3}, "retires", "not a spec key"),
        ({"method": None}, "method", "is required"),
    ],
)
def test_a_bad_spec_names_the_file_and_the_key(
    tmp_path: Path, change: dict[str, Any], key: str, words: str
) -> None:
    path = write(tmp_path, {**GOOD, **change}, name="broken.yaml")
    with pytest.raises(SpecError) as caught:
        load_spec(path, base_dir=REPO)
    message = str(caught.value)
    assert str(path) in message
    assert f"key '{key}'" in message
    assert words in message
    assert caught.value.key == key


@pytest.mark.parametrize("content", ["dag_id: [unclosed", "- just\n- a list\n"])
def test_a_file_that_is_not_a_mapping_is_named(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content, name="notyaml.yaml")
    with pytest.raises(SpecError, match="notyaml.yaml"):
        load_spec(path, base_dir=REPO)


NESTED = "dag_id: x\nspace: " + "[" * 1000 + "]" * 1000 + "\n"
ALIASES = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else '1'] * 9)}]\n" for i in range(7)
)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("content", "words"),
    [(NESTED, "more than 32 levels deep"), (ALIASES, "more than 100,000 values")],
)
def test_a_hostile_spec_file_is_refused_quickly(tmp_path: Path, content: str, words: str) -> None:
    """A DAG processor parses every spec file: a deep or alias-bomb file must neither
    crash it (RecursionError) nor take its time and memory."""
    path = write(tmp_path, content, name="hostile.yaml")
    with pytest.raises(SpecError, match="hostile.yaml") as caught:
        load_spec(path, base_dir=REPO)
    assert words in str(caught.value)
