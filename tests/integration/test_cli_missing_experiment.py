"""Commands on an experiment that is not there: a clear error, and nothing created.

A mistyped AUTOML_DB_URL that points at someone's warehouse must not get an automl
schema from a command that only reads; a misspelt name must not be watched for an hour.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from automl_core.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def schema_exists(url: str) -> bool:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regnamespace('automl')")
            return cur.fetchone()[0] is not None
    finally:
        conn.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["space", "narrow", "frist"],
        ["leaderboard", "frist"],
        ["report", "frist", "--out", "{tmp}/report"],
        ["export", "frist", "--to", "{tmp}/model"],
        ["evaluate", "frist", "--table", "digits"],
        ["predict", "frist", "--table", "digits", "--out-table", "scored"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_database_without_experiments_gets_no_schema(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert code == 2, err
    assert "no experiment named 'frist'" in err and "AUTOML_DB_URL" in err
    assert not schema_exists(db_url), f"automl {argv[0]} created the automl schema"
    assert list(tmp_path.iterdir()) == []


def test_watch_says_what_it_waits_for_and_ends_when_it_never_appears(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "watch", "frist", "--timeout", "1.5")
    assert code == 5
    assert out.count("no experiment named 'frist'") == 1  # at the end: too soon to wait
    assert "nothing appeared in 2 s" in out
    assert not schema_exists(db_url)
    from automl_core.cli.commands import watch

    monkeypatch.setattr(watch, "WAIT_NOTE_S", 0.5)  # the note while it waits, after a while
    code, out, _ = run(capsys, "watch", "frist", "--timeout", "2.5")
    assert code == 5 and out.count("no experiment named 'frist'") == 2
    assert "waiting for the search to create it" in out


def test_watch_names_the_experiments_there_and_ends_with_the_search_process(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from automl_core.store import repository as repo
    from automl_core.store.migrations import migrated_connection

    with migrated_connection(db_url) as conn:
        repo.create_experiment(
            conn, name="first", method="random", dataset="d", spec={"space": {}}, seed=0
        )
    search = subprocess.Popen([sys.executable, "-c", "pass"])
    search.wait(timeout=60)  # reaped: its pid is gone
    code, out, _ = run(capsys, "watch", "frist", "--pid", str(search.pid), "--timeout", "60")
    assert code == 5
    assert "experiments: 'first'" in out
    assert f"process {search.pid} ended" in out


def test_watch_waits_out_a_schema_being_created(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # make demo's watch read the experiments while the search's first step was between
    # migrations: UndefinedColumn parent_experiment, a traceback, and no bracket lines.
    from automl_core.store.connection import connect
    from automl_core.store.migrations import LATEST_VERSION, MIGRATIONS, migrate

    conn = connect(db_url)
    try:
        migrate(conn, MIGRATIONS[:5])
    finally:
        conn.close()
    code, out, err = run(capsys, "watch", "demo", "--timeout", "1.5")
    assert code == 5 and "Traceback" not in out + err
    assert f"at version 5, before this automl's {LATEST_VERSION}" in out
