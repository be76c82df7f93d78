"""Project home, database URL selection and password masking (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

import automl_core
from automl_core import config
from automl_core.errors import UserInputError
from automl_core.store import connect, describe, using_embedded


def test_project_home_defaults_to_dot_automl_in_the_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTOML_HOME", raising=False)
    repo_root = Path(automl_core.__file__).resolve().parent.parent
    assert config.project_home() == repo_root / ".automl"
    assert config.repository_root() == repo_root
    monkeypatch.setenv("AUTOML_HOME", "  ")
    assert config.project_home() == repo_root / ".automl"


def test_project_home_follows_automl_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTOML_HOME", str(tmp_path / "h"))
    assert config.project_home() == tmp_path / "h"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTOML_HOME", "rel/home")
    assert config.project_home() == tmp_path / "rel" / "home"
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("AUTOML_HOME", "~/x")
    assert config.project_home() == tmp_path / "user" / "x"
    assert not (tmp_path / "user").exists()  # nothing is created by asking


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("   ", None), (" postgresql://h/db ", "postgresql://h/db")],
)
def test_configured_db_url(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("AUTOML_DB_URL", raising=False)
    else:
        monkeypatch.setenv("AUTOML_DB_URL", value)
    assert config.configured_db_url() == expected
    assert using_embedded() is (expected is None)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:s%40c@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db?password=secret&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("host=h user=u password=secret dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='se cret' dbname=d", "host=h password=*** dbname=d"),
        (
            "postgresql://u@/automl?host=/p/run&port=5432",
            "postgresql://u@/automl?host=/p/run&port=5432",
        ),
        ("postgresql:///db", "postgresql:///db"),
    ],
)
def test_describe_masks_passwords(url: str, masked: str) -> None:
    assert describe(url) == masked
    assert "secret" not in describe(url)


def test_a_malformed_url_is_a_user_error_naming_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_DB_URL", "postgresq://u:topsecret@host/db")
    with pytest.raises(UserInputError) as info:
        connect()
    message = str(info.value)
    assert "AUTOML_DB_URL" in message and "malformed" in message
    assert "postgresql://USER:PASSWORD@HOST:5432/DATABASE" in message
    assert "topsecret" not in message


def test_a_malformed_explicit_url_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="the database URL given.*malformed"):
        connect("postgresql://h/db?bogus=1")
