"""The `automl schedule` and `automl space` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl_core.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "spaces"
COMPILE = (
    "{'loss': ['categorical_crossentropy'], 'optimizer_params_list': ["
    "{'optimizer': ['SGD'], 'lr': [0.0001, 0.1, 'log'], 'momentum': [0.9, 0.99]}, "
    "{'optimizer': ['Adam'], 'lr': [0.001]}], 'metrics': ['accuracy']}"
)
FIT = "{'batch_size': [32, 64], 'epochs': [1]}"


def test_schedule_hyperband_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "hyperband", "--R", "81", "--eta", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"s_max", "brackets", "total_epochs"}
    assert data["s_max"] == 4
    assert [b["s"] for b in data["brackets"]] == [4, 3, 2, 1, 0]
    assert data["brackets"][1]["rungs"][0] == {"i": 0, "n_i": 34, "r_i": 3}
    assert data["total_epochs"] == 1581


def test_schedule_hyperband_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "hyperband", "--R", "27", "--skip-last", "1"]) == 0
    out = capsys.readouterr().out
    assert "s_max=3" in out and "bracket s=3" in out and "bracket s=0" not in out
    assert "total epochs:" in out


def test_schedule_bad_eta_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedule", "hyperband", "--R", "81", "--eta", "1"]) == 2
    assert "error: The value of eta is 1, but must be >= 2." in capsys.readouterr().err


def test_space_sample_grid_prints_size_first(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "sample", str(EXAMPLES / "digits_grid.yaml"), "--method", "grid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "grid size: 8"
    configs = [json.loads(line) for line in lines[1:]]
    assert len(configs) == 8 and len({json.dumps(c, sort_keys=True) for c in configs}) == 8


def test_space_sample_grid_json_keeps_stdout_valid(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "digits_grid.yaml")
    assert main(["space", "sample", path, "--method", "grid", "--json", "--n", "3"]) == 0
    captured = capsys.readouterr()
    assert "grid size: 8" in captured.err
    assert len(json.loads(captured.out)) == 3


def test_space_sample_random_is_seeded(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "space",
        "sample",
        str(EXAMPLES / "digits.yaml"),
        "--method",
        "random",
        "--n",
        "4",
        "--json",
    ]
    assert main([*args, "--seed", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*args, "--seed", "1"]) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert main([*args, "--seed", "2"]) == 0
    assert json.loads(capsys.readouterr().out) != first
    assert len(first) == 4


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["space", "sample", str(EXAMPLES / "digits.yaml"), "--method", "grid"], "'dropout'"),
        (["space", "sample", "/nonexistent/space.yaml", "--method", "random"], "does not exist"),
        (
            ["space", "sample", str(EXAMPLES / "digits.yaml"), "--method", "random", "--n", "0"],
            "--n is 0",
        ),
        (["space", "convert-madlib", "--compile", "{'lr': 0.1}", "--fit", FIT], "must be lists"),
    ],
)
def test_bad_input_exits_2_with_an_error(
    args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err


def test_convert_madlib_yaml_loads_back_as_the_same_space(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from automl_core.space import SearchSpace, space_from_madlib

    assert main(["space", "convert-madlib", "--compile", COMPILE, "--fit", FIT]) == 0
    path = tmp_path / "converted.yaml"
    path.write_text(capsys.readouterr().out)
    assert SearchSpace.from_file(path) == space_from_madlib(COMPILE, FIT)


def test_convert_madlib_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["space", "convert-madlib", "--compile", COMPILE, "--fit", FIT, "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["optimizer_params_list"][0]["lr"] == {"loguniform": [0.0001, 0.1]}
    assert spec["epochs"] == 1
