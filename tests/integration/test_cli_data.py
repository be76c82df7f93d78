"""`automl data load|prepare|info` end to end, in-process, on a real PostgreSQL."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from automl_core.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_load_prepare_info(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "data", "load", "digits", "--table", "digits")
    assert code == 0 and "created table digits: 1797 train rows, features (64,)" in out
    code, out, _ = _run(capsys, "data", "prepare", "digits", "--partitions", "4")
    assert code == 0
    assert "1438 train / 359 valid rows in 4 partitions, 10 classes" in out
    assert '{"train": [360, 360, 359, 359], "valid": [90, 90, 90, 89]}' in out
    code, out, _ = _run(capsys, "data", "info", "digits")
    info = json.loads(out)
    assert code == 0 and info["packed_table"] == "digits_packed" and info["partitions"] == 4
    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("SELECT sum(n) FROM digits_packed")
        assert cur.fetchone()[0] == 1797
    conn.close()


def test_prepare_options(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "data", "load", "digits", "--table", "d")[0] == 0
    code, out, _ = _run(
        capsys,
        "data",
        "prepare",
        "d",
        "--partitions",
        "3",
        "--validation-fraction",
        "0.5",
        "--seed",
        "9",
        "--buffer-size",
        "100",
    )
    assert code == 0 and "899 train / 898 valid rows in 3 partitions" in out
    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("SELECT max(n), count(*) FROM d_packed")
        assert cur.fetchone() == (100, 18)  # 6 partitions of 299-300 rows, 3 buffers each
    conn.close()


def test_replace(db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert _run(capsys, "data", "load", "digits", "--table", "t")[0] == 0
    code, _, err = _run(capsys, "data", "load", "digits", "--table", "t")
    assert code == 2 and "error: The table 't' already exists: pass --replace" in err
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,kind\n1,2,x\n3,4,y\n", encoding="utf-8")
    code, out, _ = _run(
        capsys, "data", "load", f"csv:{csv}", "--table", "t", "--replace", "--label-column", "kind"
    )
    assert code == 0 and "replaced table t: 2 train rows, features (2,), text labels" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "load", "mnist", "--table", "m"], "Unknown data source 'mnist'"),
        (["data", "load", "digits", "--table", "a;b"], "not a plain SQL identifier"),
        (["data", "load", "npz:/nonexistent.npz", "--table", "m"], "no such file"),
        (["data", "prepare", "digits"], "--partitions is required on PostgreSQL"),
        (["data", "prepare", "nothere", "--partitions", "2"], "'nothere' does not exist"),
        (["data", "info", "nothere"], "automl data prepare nothere"),
    ],
)
def test_errors_exit_2_with_a_message(
    db_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    if argv[1] == "prepare" and argv[2] == "digits":
        assert _run(capsys, "data", "load", "digits", "--table", "digits")[0] == 0
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err


def test_bad_csv_row_is_reported_by_line(
    db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("a,label\n1,0\n2,1\n3\n", encoding="utf-8")
    code, _, err = _run(capsys, "data", "load", f"csv:{csv}", "--table", "t")
    assert code == 2 and "line 4: 1 fields, but the header has 2" in err


@pytest.fixture
def embedded_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private project home for the embedded server; AUTOML_DB_URL unset."""
    from automl_core.embedded_server import server as embedded

    # Under /tmp and world-enterable: as root the server runs as an unprivileged account,
    # which must reach the home (pytest's tmp_path root is 0700).
    home = Path(tempfile.mkdtemp(prefix="automl-data-cli-", dir="/tmp"))
    home.chmod(0o755)
    monkeypatch.setenv("AUTOML_HOME", str(home))
    monkeypatch.delenv("AUTOML_DB_URL", raising=False)
    yield home
    embedded.stop(home)
    shutil.rmtree(home, ignore_errors=True)


def test_without_a_database_url_the_embedded_server_is_used(
    embedded_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "data", "load", "digits", "--table", "digits")[0] == 0
    code, out, _ = _run(capsys, "data", "prepare", "digits", "--partitions", "2")
    assert code == 0 and "in 2 partitions" in out
    assert (embedded_home / "pg" / "data").is_dir()
