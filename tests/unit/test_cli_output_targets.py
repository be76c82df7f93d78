"""Where the CLI writes: a bad or taken --export/--to, --report/--out or `space narrow
--out` is refused with a clear error before anything trains or is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from automl_core.cli import main
from automl_core.errors import UserInputError

SPACE = Path(__file__).resolve().parents[2] / "examples" / "spaces" / "digits.yaml"


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("mine")
    return path


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The calls `automl run` makes to run_search and finalize (none should happen)."""
    import automl_core.experiment as experiment

    calls: list[Any] = []
    monkeypatch.setattr(experiment, "run_search", lambda *a, **k: calls.append(a) or "x")
    monkeypatch.setattr(experiment, "finalize", lambda *a, **k: calls.append(a))
    return calls


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    return err


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--export", "{file}", "is an existing file"),
        ("--export", "{file}/sub", "is a file, not a folder"),
        ("--export", "ftp://x/y", "not supported"),
        ("--report", "{file}", "is an existing file"),
        ("--report", "{file}/sub", "is a file, not a folder"),
    ],
)
def test_run_refuses_bad_outputs_before_training(
    option: str,
    value: str,
    fragment: str,
    a_file: Path,
    searches: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["run", "--data", "digits", "--space", str(SPACE), "--method", "random"]
    err = _refused(capsys, *argv, option, value.format(file=a_file))
    assert fragment in err
    assert searches == []  # nothing trained


def test_run_refuses_a_report_folder_it_did_not_write(
    tmp_path: Path, searches: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>my site</h1>")
    argv = ["run", "--data", "digits", "--space", str(SPACE), "--method", "random"]
    err = _refused(capsys, *argv, "--report", str(tmp_path / "site"))
    assert "index.html" in err and "not written by an automl report" in err
    assert searches == []


def test_export_and_report_inside_a_file_are_refused(
    a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(capsys, "export", "exp", "--to", str(a_file / "sub"))
    assert f"{a_file}' is a file, not a folder" in err
    err = _refused(capsys, "report", "exp", "--out", str(a_file / "sub"))
    assert "The report folder" in err and f"{a_file}' is a file, not a folder" in err


def test_export_refuses_a_card_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model_card.json").write_text('{"name": "my card"}')
    err = _refused(capsys, "export", "exp", "--to", str(tmp_path))
    assert "model_card.json exists and is not a model card written by automl" in err
    assert (tmp_path / "model_card.json").read_text() == '{"name": "my card"}'


@pytest.mark.parametrize("name", ["orig_space.yaml", "orig_space.json"])
def test_space_narrow_refuses_to_overwrite_a_users_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / name
    out.write_text("lr: [0.1]\n")
    err = _refused(capsys, "space", "narrow", "exp", "--out", str(out))
    assert f"--out {out} exists and was not written by `automl space narrow`" in err
    assert out.read_text() == "lr: [0.1]\n"


def test_space_narrow_refuses_a_path_inside_a_file(
    a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(capsys, "space", "narrow", "exp", "--out", str(a_file / "x.yaml"))
    assert "is an existing file, not a folder" in err and "--out" in err


def test_space_narrow_may_replace_its_own_yaml(tmp_path: Path) -> None:
    from automl_core.cli.commands.space import _check_out_file

    out = tmp_path / "narrowed.yaml"
    out.write_text("# Narrowed 'exp' to its top 3 trials: [1, 2, 3].\nlr: [0.1]\n")
    _check_out_file(out)  # no error
    _check_out_file(tmp_path / "new" / "narrowed.json")  # a new file in a new folder
    out.with_suffix(".json").write_text("{}")
    with pytest.raises(UserInputError, match="not written by"):
        _check_out_file(out.with_suffix(".json"))


def test_space_narrow_writes_where_it_checked_a_home_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `~/x.yaml` was checked expanded and written literally, into ./~/x.yaml.
    from automl_core.experiment import narrowing

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)

    class Narrowed:
        space: dict[str, Any] = {"lr": [0.1]}
        changes: list[str] = []

        def summary(self) -> str:
            return "Narrowed 'exp' to its top 1 trials: [0]."

    monkeypatch.setattr(narrowing, "narrow_experiment", lambda *a, **k: Narrowed())
    assert main(["space", "narrow", "exp", "--out", "~/new/n.yaml"]) == 0
    assert (home / "new" / "n.yaml").is_file() and not (work / "~").exists()
