"""Bad input through the ``automl`` command, on a real PostgreSQL (issue 12, kinds 5-8, 11).

Every case asserts the exit code (2), one ``error:`` line that names the input and the
fix, no traceback, and a database exactly as it was: the same tables with the same rows
(an md5 of every table's rows, in ``public`` and ``automl``). The prepared ``digits``
database is shared (``digits_url``); a case that loads data uses a fresh one.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest
import yaml
from psycopg2 import sql

from automl_core.cli import main


def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """``schema.table`` -> (rows, md5 of its rows) for every table in public and automl."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT schemaname, tablename FROM pg_catalog.pg_tables "
                "WHERE schemaname IN ('public', 'automl') ORDER BY 1, 2"
            )
            names = cur.fetchall()
            state = {}
            for schema, table in names:
                cur.execute(
                    sql.SQL(
                        "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY "
                        "t::text), '')) FROM {}.{} t"
                    ).format(sql.Identifier(schema), sql.Identifier(table))
                )
                state[f"{schema}.{table}"] = cur.fetchone()
        return state
    finally:
        conn.close()


def refused(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> str:
    """Run ``automl argv``; assert it is refused cleanly and wrote nothing. The message."""
    before = snapshot(url)
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert snapshot(url) == before
    return lines[0]


@pytest.fixture
def on_digits(digits_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AUTOML_DB_URL", digits_url)
    return digits_url


def space_file(tmp_path: Path, space: object, suffix: str = ".yaml") -> str:
    path = tmp_path / f"space{suffix}"
    if isinstance(space, str):
        path.write_text(space, encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(space), encoding="utf-8")
    return str(path)


def run_argv(space: str, *extra: str, method: str = "grid") -> list[str]:
    argv = ["run", "--data", "digits", "--space", space, "--method", method]
    return [*argv, "--epochs", "1", "--no-progress", "--name", "bad-input", *extra]


BASE = {"architecture": "mlp", "hidden": 32, "optimizer": "sgd"}


# --- 5: values no trial could train with ------------------------------------------------


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({**BASE, "architecture": "nosuchnet"}, ["'architecture'", "'nosuchnet'", "Use one of"]),
        ({**BASE, "batch_size": 0}, ["'batch_size'", "is 0", ">= 1"]),
        ({**BASE, "lr": -0.01}, ["'lr'", "-0.01", "> 0"]),
        ({**BASE, "lr": "fast"}, ["'lr'", "'fast'", "must be a number"]),
        ({**BASE, "lr": [0.1, "fast"]}, ["'lr'", "'fast'", "must be a number"]),
        ({**BASE, "batch_size": {"randint": [0, 64]}}, ["'batch_size'", "is 0", ">= 1"]),
        (
            {**BASE, "optimizer": [{"optimizer": "sgd", "lr": [0.1, -1]}, {"optimizer": "adam"}]},
            ["'optimizer/0/lr'", "is -1", "> 0"],
        ),
        ({**BASE, "lr": [0.1, None]}, ["'lr' (option 1) is null", "leave the parameter out"]),
        ({**BASE, "lr": None}, ["'lr' is null", "leave the parameter out"]),
    ],
)
def test_a_value_no_trial_could_train_with_is_refused_before_the_experiment(
    on_digits: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    space: dict[str, Any],
    words: list[str],
) -> None:
    message = refused(capsys, on_digits, *run_argv(space_file(tmp_path, space)))
    for word in words:
        assert word in message


def test_a_key_training_never_reads_is_named_when_the_experiment_is_created(
    digits_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A typo changes nothing, so it is no error, but the search it makes is pointless.
    from automl_core.experiment import create_experiment
    from automl_core.experiment.request import SearchRequest

    space = {"architecture": "mlp", "hiden": [16, 32], "batch_size": 64}
    request = SearchRequest(dataset="digits", space=space, method="grid", name="typo-key")
    with caplog.at_level(logging.WARNING):
        assert create_experiment(request, db_url=digits_url)["name"] == "typo-key"
    assert "search-space key 'hiden'" in caplog.text and "did you mean 'hidden'" in caplog.text


# --- 6: tables the product owns ----------------------------------------------------------


def test_loading_over_a_packed_table_is_refused(
    on_digits: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["data", "load", "digits", "--table", "digits_packed", "--replace"]
    message = refused(capsys, on_digits, *argv)
    assert "--table" in message and "'digits_packed'" in message
    assert "reserved for packed tables" in message and "choose another --table" in message


def test_predicting_into_a_packed_table_is_refused(
    on_digits: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["predict", "any-experiment", "--table", "digits", "--out-table", "digits_packed"]
    message = refused(capsys, on_digits, *argv, "--replace")
    assert "--out-table" in message and "reserved for packed tables" in message


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "load", "digits", "--table", "mop_jobs", "--replace"],
        ["predict", "x", "--table", "digits", "--out-table", "trial_epochs", "--replace"],
    ],
)
def test_a_table_of_the_automl_schema_is_never_replaced(
    digits_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    # A search_path that reaches the automl schema makes its tables visible unqualified.
    monkeypatch.setenv("AUTOML_DB_URL", f"{digits_url}?options=-csearch_path%3Dpublic%2Cautoml")
    message = refused(capsys, digits_url, *argv)
    assert f"automl.{argv[-2]}" in message and "never replaced" in message


# --- 7: numbers past the shared limits ----------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "method", "words"),
    [
        (["--R", "1000000000000"], "hyperband", ["--R", "from 1 to 10000"]),
        (["--seed", str(2**70)], "grid", ["--seed", "from 0 to 2147483647"]),
        (["--epochs", "100000"], "grid", ["--epochs", "from 1 to 1000"]),
        (["--batch-size", "0"], "grid", ["--batch-size", "from 1 to 10000"]),
        (["--workers", "100000"], "grid", ["--workers", "from 1 to 256"]),
        (
            ["--cluster", "tcp://127.0.0.1:99999"],
            "grid",
            ["of --cluster is", "port from 1 to 65535"],
        ),
        (["--startup-trials", "13"], "hyperopt", ["startup_trials is 13", "from 1 to 12"]),
    ],
)
def test_run_numbers_past_their_limits_are_refused(
    on_digits: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    extra: list[str],
    method: str,
    words: list[str],
) -> None:
    space = space_file(tmp_path, {**BASE, "lr": [0.05, 0.1]})
    message = refused(capsys, on_digits, *run_argv(space, *extra, method=method))
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "prepare", "digits", "--partitions", "100000"],
        ["data", "prepare", "digits", "--partitions", "2", "--seed", str(2**70)],
    ],
)
def test_prepare_numbers_past_their_limits_are_refused(
    on_digits: str, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert "must be an integer from" in refused(capsys, on_digits, *argv)


def test_space_sample_numbers_past_their_limits_are_refused(
    on_digits: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    space = space_file(tmp_path, {**BASE, "lr": {"uniform": [0.01, 0.1]}})
    argv = ["space", "sample", space, "--method", "random", "--n", "1000000000000"]
    assert "--n is 1000000000000" in refused(capsys, on_digits, *argv)


# --- 8: spaces too deep or too large -----------------------------------------------------


def billion_laughs() -> str:
    """Ten levels of nine aliases of the level before: ~10^9 values once written out."""
    lines = ["l0: &l0 [{lr: 0.1}, {lr: 0.2}]"]
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"{{g: *l{i - 1}}}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "suffix", "words"),
    [
        ('{"lr": ' + "[" * 1000 + "]" * 1000 + "}", ".json", ["more than 32 levels", "flatten"]),
        ("lr: " + "[" * 1000 + "]" * 1000 + "\n", ".yaml", ["more than 32 levels", "flatten"]),
        (billion_laughs(), ".yaml", ["more than 100,000 values", "without nested aliases"]),
    ],
)
def test_a_space_too_deep_or_too_large_is_refused_quickly(
    on_digits: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    suffix: str,
    words: list[str],
) -> None:
    path = space_file(tmp_path, text, suffix)
    start = time.perf_counter()
    message = refused(capsys, on_digits, *run_argv(path, method="random"))
    assert time.perf_counter() - start < 10
    assert path in message
    for word in words:
        assert word in message


# --- 11: CSV and npz files --------------------------------------------------------------


@pytest.fixture
def fresh(db_url: str) -> str:
    assert main(["db", "init"]) == 0
    return db_url


def label_column_type(url: str, table: str) -> str:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = %s AND column_name = 'label'",
                (table,),
            )
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_csv_with_a_byte_order_mark_loads(
    fresh: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bom.csv"
    # Excel's "CSV UTF-8": the mark sits before the first column's name, here the label's.
    path.write_bytes("\ufefflabel,a,b\n1,1,2\n2,3,4\n".encode())
    assert main(["data", "load", f"csv:{path}", "--table", "bom"]) == 0
    assert "2 train rows, features (2,), integer labels" in capsys.readouterr().out


def test_integral_float_labels_in_a_csv_load_as_integers_like_npz(
    fresh: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "floats.csv"
    path.write_text("a,b,label\n1,2,1.0\n3,4,2.0\n5,6,2\n", encoding="utf-8")
    npz = tmp_path / "floats.npz"
    np.savez(npz, x=np.ones((3, 2)), y=np.array([1.0, 2.0, 2.0]))
    assert main(["data", "load", f"csv:{path}", "--table", "from_csv"]) == 0
    assert main(["data", "load", f"npz:{npz}", "--table", "from_npz"]) == 0
    capsys.readouterr()
    assert label_column_type(fresh, "from_csv") == label_column_type(fresh, "from_npz")
    assert label_column_type(fresh, "from_csv") == "integer"
    conn = psycopg2.connect(fresh)
    with conn.cursor() as cur:
        cur.execute("SELECT array_agg(label ORDER BY id) FROM from_csv")
        assert cur.fetchone()[0] == [1, 2, 2]
    conn.close()


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        (
            "semi.csv",
            "a;b;label\n1;2;1\n3;4;2\n",
            ["semi.csv is semicolon-separated", "'a;b;label'", "sep=';'"],
        ),
        ("tabs.csv", "a\tb\tlabel\n1\t2\t1\n", ["is tab-separated", "save it with commas"]),
        ("two.csv", "a,label,label\n1,2,1\n3,4,2\n", ["2 columns named 'label'", "rename"]),
    ],
)
def test_a_bad_csv_is_refused_with_what_to_do(
    fresh: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    content: str,
    words: list[str],
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    message = refused(capsys, fresh, "data", "load", f"csv:{path}", "--table", "t")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"y": np.array([1, 2])}, ["the array 'x' is missing", "numpy.savez(path, x="]),
        ({"features": np.ones((2, 2))}, ["the arrays 'x' and 'y' are missing", "'features'"]),
        (
            {"x": np.array([[1, 2], [3]], dtype=object), "y": np.array([1, 2])},
            ["the array 'x' is an object array", "regular numeric array"],
        ),
    ],
)
def test_a_bad_npz_names_the_array(
    fresh: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arrays: dict[str, Any],
    words: list[str],
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    message = refused(capsys, fresh, "data", "load", f"npz:{path}", "--table", "t")
    for word in words:
        assert word in message


def test_the_spaces_above_are_refused_for_their_one_bad_value_only() -> None:
    from automl_core.experiment import SearchRequest

    space = {**BASE, "lr": [0.05, 0.1], "batch_size": {"randint": [1, 64]}}
    SearchRequest(dataset="digits", space=space, method="grid").validate()
