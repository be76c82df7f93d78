"""The spec loader and the run form hold numbers to the same limits as the CLI
(``automl_core.experiment.request.LIMITS``), and bound an inline space like a file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from automl_airflow.params import run_fields
from automl_airflow.specs import SpecError, load_spec

from automl_core.experiment.request import LIMITS
from tests.airflow.helpers import REPO

GOOD = {
    "dag_id": "t_limits",
    "dataset": "digits",
    "space": {"architecture": "mlp", "lr": [0.01, 0.1]},
    "method": "hyperband",
}


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


@pytest.mark.parametrize(
    ("change", "key", "limit"),
    [
        ({"budget": {"R": LIMITS["R"][1] + 1}}, "budget.R", "R"),
        ({"budget": {"eta": LIMITS["eta"][0] - 1}}, "budget.eta", "eta"),
        ({"seed": LIMITS["seed"][1] + 1}, "seed", "seed"),
        ({"partitions": LIMITS["partitions"][1] + 1}, "partitions", "partitions"),
        ({"workers": LIMITS["workers"][1] + 1}, "workers", "workers"),
    ],
)
def test_the_spec_loader_uses_the_shared_limits(
    tmp_path: Path, change: dict[str, object], key: str, limit: str
) -> None:
    low, high = LIMITS[limit]
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, {**GOOD, **change}), base_dir=REPO)
    assert info.value.key == key
    assert f"must be between {low} and {high}" in str(info.value)


def test_the_spec_loader_accepts_the_upper_limits(tmp_path: Path) -> None:
    spec = {**GOOD, "method": "random", "budget": {"epochs": LIMITS["epochs"][1]}}
    spec["seed"] = LIMITS["seed"][1]
    assert load_spec(write(tmp_path, spec), base_dir=REPO).seed == LIMITS["seed"][1]


def test_the_run_form_uses_the_shared_limits(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, {**GOOD, "method": "random"}), base_dir=REPO)
    schemas = {f.name: f.schema for f in run_fields(spec)}
    for name in ("seed", "epochs"):
        assert (schemas[name]["minimum"], schemas[name]["maximum"]) == LIMITS[name]


def test_an_inline_space_of_nested_aliases_is_refused_quickly(tmp_path: Path) -> None:
    lines = [f"{k}: {v}" for k, v in GOOD.items() if k != "space"]
    lines += ["space:", "  l0: &l0 [{lr: 0.1}, {lr: 0.2}]"]
    for i in range(1, 10):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"{{g: *l{i - 1}}}"] * 9) + "]")
    start = time.perf_counter()
    with pytest.raises(SpecError, match="holds more than 100,000 values once its aliases"):
        load_spec(write(tmp_path, "\n".join(lines) + "\n"), base_dir=REPO)
    assert time.perf_counter() - start < 5
