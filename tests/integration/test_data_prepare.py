"""Packing source tables into partitions on a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from automl_core.data.load import load_source
from automl_core.data.prepare import packed_table_ddl, prepare_dataset
from automl_core.data.reader import DatasetInfo, dataset_info, read_partition
from automl_core.data.sources import read_source
from automl_core.errors import UserInputError
from automl_core.store.dialect import Dialect


def _load(
    conn: Any,
    tmp_path: Path,
    name: str = "src",
    *,
    n_train: int = 203,
    n_test: int = 0,
    labels: list[Any] | None = None,
) -> np.ndarray:
    """Load a source whose feature [0, 0] is the row id (ids are 0.. in order); return x."""
    rng = np.random.default_rng(42)
    n = n_train + n_test
    x = rng.normal(5.0, 3.0, size=(n, 2, 3)).astype(np.float32)
    x[:, 0, 0] = np.arange(n)
    values = np.array(labels if labels is not None else [0, 1, 2])
    y = values[np.arange(n) * 7 % values.size]
    arrays = {"x": x[:n_train], "y": y[:n_train]}
    if n_test:
        arrays |= {"x_test": x[n_train:], "y_test": y[n_train:]}
    np.savez(tmp_path / f"{name}.npz", **arrays)
    load_source(conn, read_source(f"npz:{tmp_path / f'{name}.npz'}"), name)
    return x


def _read_all(conn: Any, info: DatasetInfo, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    return [read_partition(conn, info.name, p, split) for p in range(info.partitions)]


def _ids(info: DatasetInfo, x: np.ndarray) -> list[int]:
    raw = x[:, 0, 0].astype(np.float64) * info.normalization["std"] + info.normalization["mean"]
    return np.rint(raw).astype(int).tolist()


def _snapshot(conn: Any) -> dict[str, str]:
    """Every table in public and automl.datasets, with an md5 of its rows."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname = 'public' OR (schemaname, tablename) = ('automl', 'datasets') "
            "ORDER BY 1, 2"
        )
        out = {}
        for schema, table in cur.fetchall():
            cur.execute(
                sql.SQL("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {} t").format(
                    sql.Identifier(schema, table)
                )
            )
            out[f"{schema}.{table}"] = str(cur.fetchone()[0])
    conn.rollback()
    return out


def test_prepare_packs_every_train_row_once(conn: Any, tmp_path: Path) -> None:
    x = _load(conn, tmp_path)
    info = prepare_dataset(conn, "src", partitions=3, seed=1)
    assert info == dataset_info(conn, "src")
    assert info.feature_shape == (2, 3) and info.partitions == 3
    assert info.class_values == [0, 1, 2] and info.num_classes == 3
    assert (info.n_train, info.n_valid) == (162, 41)  # round(0.2 * 203) held out
    assert info.rows_per_partition == {"train": [54, 54, 54], "valid": [14, 14, 13]}
    assert (info.source_table, info.packed_table) == ("src", "src_packed")
    train, valid = _read_all(conn, info, "train"), _read_all(conn, info, "valid")
    seen = []
    for (xs, ys), expected in zip(
        train + valid,
        info.rows_per_partition["train"] + info.rows_per_partition["valid"],
        strict=True,
    ):
        assert xs.dtype == np.float32 and xs.shape == (expected, 2, 3)
        assert ys.dtype == np.int64 and ys.shape == (expected,)
        ids = _ids(info, xs)
        seen += ids
        # the stored rows are the source rows, normalised; labels are class indices
        raw = x[ids]
        np.testing.assert_allclose(
            xs, (raw - info.normalization["mean"]) / info.normalization["std"], rtol=1e-5, atol=1e-5
        )
        assert ys.tolist() == [np.array(ids) * 7 % 3][0].tolist()
    assert sorted(seen) == list(range(203))
    # normalisation: global mean/std of the training rows' values
    train_ids = [i for xs, _ in train for i in _ids(info, xs)]
    raw_train = x[train_ids].astype(np.float64)
    assert info.normalization["mean"] == pytest.approx(raw_train.mean(), rel=1e-9)
    assert info.normalization["std"] == pytest.approx(raw_train.std(), rel=1e-9)
    # stratified: each class gives 20% of its rows (within one row)
    valid_labels = np.concatenate([ys for _, ys in valid])
    counts = np.bincount(np.array(range(203)) * 7 % 3)
    assert all(abs(np.sum(valid_labels == c) - 0.2 * counts[c]) < 1 for c in range(3))


def test_same_seed_same_packing_other_seed_other(conn: Any, tmp_path: Path) -> None:
    _load(conn, tmp_path)

    def packing(seed: int) -> list[list[int]]:
        info = prepare_dataset(conn, "src", partitions=2, seed=seed)
        return [
            _ids(info, xs)
            for xs, _ in _read_all(conn, info, "train") + _read_all(conn, info, "valid")
        ]

    first = packing(5)
    assert packing(5) == first
    assert packing(6) != first


def test_test_split_is_validation_unless_a_fraction_is_given(conn: Any, tmp_path: Path) -> None:
    _load(conn, tmp_path, n_train=100, n_test=21)
    info = prepare_dataset(conn, "src", partitions=4)
    assert (info.n_train, info.n_valid) == (100, 21)
    assert info.rows_per_partition["valid"] == [6, 5, 5, 5]
    valid_ids = sorted(i for xs, _ in _read_all(conn, info, "valid") for i in _ids(info, xs))
    assert valid_ids == list(range(100, 121))
    info = prepare_dataset(conn, "src", partitions=4, validation_fraction=0.3)
    assert (info.n_train, info.n_valid) == (70, 30)
    all_ids = [
        i for s in ("train", "valid") for xs, _ in _read_all(conn, info, s) for i in _ids(info, xs)
    ]
    assert sorted(all_ids) == list(range(100))  # test rows are not packed then


def test_rerun_replaces_packed_table_and_row(conn: Any, tmp_path: Path) -> None:
    _load(conn, tmp_path)
    prepare_dataset(conn, "src", partitions=4)
    info = prepare_dataset(conn, "src", partitions=2, buffer_size=10)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM automl.datasets")
        assert cur.fetchone()[0] == 1
        cur.execute(
            'SELECT split, "partition", count(*), sum(n) FROM src_packed GROUP BY 1, 2 ORDER BY 1, 2'
        )
        groups = cur.fetchall()
    assert info.rows_per_partition == {"train": [81, 81], "valid": [21, 20]}
    assert groups == [
        ("train", 0, 9, 81),
        ("train", 1, 9, 81),
        ("valid", 0, 3, 21),
        ("valid", 1, 2, 20),
    ]


def test_text_labels_and_foreign_table(conn: Any) -> None:
    """A table made without `automl data load`: double precision[] features, no split."""
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE flowers (id int, features double precision[], species varchar)")
        cur.execute(
            "INSERT INTO flowers SELECT g, ARRAY[g, g * 2, 1], "
            "(ARRAY['virginica', 'setosa', 'Zinnia'])[g % 3 + 1] FROM generate_series(1, 60) g"
        )
    conn.commit()
    info = prepare_dataset(conn, "flowers", partitions=2, label_column="species")
    assert info.class_values == ["Zinnia", "setosa", "virginica"]  # code-point order
    assert info.feature_shape == (3,) and info.source == "flowers"
    xs, ys = read_partition(conn, "flowers", 0)
    ids = np.rint(xs[:, 0] * info.normalization["std"] + info.normalization["mean"]).astype(int)
    expected = [["virginica", "setosa", "Zinnia"][i % 3] for i in ids]
    assert [info.class_values[k] for k in ys] == expected


def test_greenplum_packed_table_is_distributed_by_partition(conn: Any) -> None:
    gp = packed_table_ddl("d_packed", Dialect.greenplum()).as_string(conn)
    pg = packed_table_ddl("d_packed", Dialect.postgres()).as_string(conn)
    assert gp.rstrip().endswith('DISTRIBUTED BY ("partition")')
    assert "DISTRIBUTED" not in pg
    assert gp.startswith('CREATE TABLE "d_packed"')


# --- bad input: a clear UserInputError and the database as it was ---------------------


def _sql(conn: Any, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    conn.commit()


BAD_TABLES = {
    "text features": (
        [
            "CREATE TABLE bad (id int, features text, label int)",
            "INSERT INTO bad VALUES (1, '1,2', 0)",
        ],
        {},
        r"column 'features' of 'bad' has type text, but must be an array of numbers",
    ),
    "ragged": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad VALUES (1, '{1,2}', 0), (2, '{1,2,3}', 1), (3, '{4,5}', 0)",
        ],
        {},
        r"features of 'bad' are ragged: rows have between 2 and 3 values",
    ),
    "nan": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad SELECT g, ARRAY[g, 1], g % 2 FROM generate_series(1, 20) g",
            "UPDATE bad SET features = '{NaN,1}' WHERE id = 13",
            "UPDATE bad SET features = '{1,Infinity}' WHERE id = 17",
        ],
        {},
        r"'bad' has 2 row\(s\) with NaN or infinite features \(first: id 13\)",
    ),
    "beyond float32": (
        [
            "CREATE TABLE bad (id int, features float8[], label int)",
            "INSERT INTO bad SELECT g, ARRAY[g, 1], g % 2 FROM generate_series(1, 20) g",
            "UPDATE bad SET features = '{1e300,1}' WHERE id = 3",
        ],
        {},
        r"outside the float32 range",
    ),
    "null element": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad VALUES (1, '{1,NULL}', 0), (2, '{1,2}', 1)",
        ],
        {},
        r"1 row\(s\) of 'bad' have NULL, empty or multi-dimensional features",
    ),
    "2-d features": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad VALUES (1, '{{1,2},{3,4}}', 0), (2, '{{1,2},{3,4}}', 1)",
        ],
        {},
        r"multi-dimensional",
    ),
    "null label": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad VALUES (1, '{1}', NULL), (2, '{2}', 1), (3, '{3}', 0)",
        ],
        {},
        r"1 row\(s\) of 'bad' have a NULL 'label'",
    ),
    "empty": (["CREATE TABLE bad (id int, features real[], label int)"], {}, r"'bad' is empty"),
    "one class": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad SELECT g, ARRAY[g], 4 FROM generate_series(1, 20) g",
        ],
        {},
        r"label column 'label' of table 'bad' has 1 distinct value\(s\) \(\[4\]\)",
    ),
    "missing label column": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad SELECT g, ARRAY[g], g % 2 FROM generate_series(1, 20) g",
        ],
        {"label_column": "target"},
        r"'bad' has no column 'target'.*pass --label-column",
    ),
    "bad split": (
        [
            "CREATE TABLE bad (id int, features real[], label int, split text)",
            "INSERT INTO bad SELECT g, ARRAY[g], g % 2, 'train' FROM generate_series(1, 20) g",
            "UPDATE bad SET split = 'validation' WHERE id = 2",
        ],
        {},
        r"1 row\(s\) of 'bad' have a split other than 'train' or 'test'",
    ),
    "only test rows": (
        [
            "CREATE TABLE bad (id int, features real[], label int, split text)",
            "INSERT INTO bad SELECT g, ARRAY[g], g % 2, 'test' FROM generate_series(1, 20) g",
        ],
        {},
        r"'bad' has no 'train' rows",
    ),
    "fewer rows than partitions": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad SELECT g, ARRAY[g], g % 2 FROM generate_series(1, 12) g",
        ],
        {"partitions": 12},
        r"'bad' has 10 training rows, fewer than the 12 partitions",
    ),
    "fewer validation rows than partitions": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad SELECT g, ARRAY[g], g % 2 FROM generate_series(1, 20) g",
        ],
        {"partitions": 5},
        r"gives 4 validation rows, fewer than the 5 partitions",
    ),
    "not our packed table": (
        [
            "CREATE TABLE bad (id int, features real[], label int)",
            "INSERT INTO bad SELECT g, ARRAY[g], g % 2 FROM generate_series(1, 20) g",
            "CREATE TABLE bad_packed (precious text)",
            "INSERT INTO bad_packed VALUES ('keep me')",
        ],
        {},
        r"'bad_packed' exists but is not the packed table of dataset 'bad'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_bad_tables_are_refused_and_nothing_changes(conn: Any, tmp_path: Path, case: str) -> None:
    _load(conn, tmp_path)
    prepare_dataset(conn, "src", partitions=2)  # existing state that must survive
    statements, kwargs, match = BAD_TABLES[case]
    _sql(conn, *statements)
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=match):
        prepare_dataset(conn, "bad", **({"partitions": 2} | kwargs))
    assert _snapshot(conn) == before
    assert conn.status == psycopg2.extensions.STATUS_READY  # the transaction was ended


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        (
            "nothere",
            {"partitions": 2},
            r"'nothere' does not exist: load it first with `automl data load",
        ),
        ("src; DROP TABLE src", {"partitions": 2}, "not a plain SQL identifier"),
        ("pg_class", {"partitions": 2}, r"is pg_catalog.pg_class, which the database owns"),
        ("public.src", {"partitions": 2}, "not a plain SQL identifier"),
        ("src", {"partitions": 0}, "--partitions is 0, but must be at least 1"),
        ("src", {"partitions": -3}, "--partitions is -3"),
        ("src", {}, "--partitions is required on PostgreSQL"),
        ("src", {"partitions": 2, "validation_fraction": 1.0}, "--validation-fraction is 1.0"),
        ("src", {"partitions": 2, "validation_fraction": 0.0}, "--validation-fraction is 0.0"),
        ("src", {"partitions": 2, "seed": -1}, "--seed is -1"),
        ("src", {"partitions": 2, "buffer_size": 0}, "--buffer-size is 0"),
        ("src", {"partitions": 2, "label_column": "x'; --"}, "label column"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_changes(
    conn: Any, tmp_path: Path, name: str, kwargs: dict[str, Any], match: str
) -> None:
    _load(conn, tmp_path)
    prepare_dataset(conn, "src", partitions=3)
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=match):
        prepare_dataset(conn, name, **kwargs)
    assert _snapshot(conn) == before


@pytest.mark.parametrize("column", ["id", "features", "split"])
def test_a_fixed_column_is_never_the_label(conn: Any, tmp_path: Path, column: str) -> None:
    # Labelling by id made one class per row and replaced the good packing of src.
    _load(conn, tmp_path)
    prepare_dataset(conn, "src", partitions=2)
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=rf"--label-column is '{column}', but the columns"):
        prepare_dataset(conn, "src", partitions=2, label_column=column)
    assert _snapshot(conn) == before
    assert dataset_info(conn, "src").num_classes == 3


def test_failure_while_writing_keeps_the_previous_packing(
    conn: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automl_core.data import prepare as prepare_module

    _load(conn, tmp_path)
    prepare_dataset(conn, "src", partitions=3)
    before = _snapshot(conn)
    calls = {"n": 0}
    real = prepare_module.encode_packed_row

    def failing(*args: Any) -> bytes:
        calls["n"] += 1
        if calls["n"] == 4:
            raise MemoryError("out of memory")
        return real(*args)

    monkeypatch.setattr(prepare_module, "encode_packed_row", failing)
    with pytest.raises(MemoryError):
        prepare_dataset(conn, "src", partitions=2, buffer_size=7)
    assert _snapshot(conn) == before


def test_prepare_needs_the_schema(make_database: Any, tmp_path: Path) -> None:
    connection = psycopg2.connect(make_database())
    try:
        _load(connection, tmp_path)
        with pytest.raises(UserInputError, match="automl schema does not exist"):
            prepare_dataset(connection, "src", partitions=2)
    finally:
        connection.close()


def test_the_data_under_experiments_is_never_changed(conn: Any, tmp_path: Path) -> None:
    # Re-preparing swapped the data under existing experiments: their export then
    # described data of another shape and their models could no longer predict.
    from automl_core.store import repository as repo

    _load(conn, tmp_path)
    prepare_dataset(conn, "src", partitions=2)
    exp = repo.create_experiment(conn, name="on-src", method="random", dataset="src",
                                 spec={}, seed=0)  # fmt: skip
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=r"experiments on-src train on it"):
        prepare_dataset(conn, "src", partitions=3)  # it may still train: nothing moves
    assert _snapshot(conn) == before

    repo.set_experiment_status(conn, exp.id, repo.ExperimentState.COMPLETED, finished=True)
    prepare_dataset(conn, "src", partitions=3)  # the same data in other partitions
    assert dataset_info(conn, "src").partitions == 3

    # Other data in the same table: other classes, and other rows to normalise.
    load_source(conn, read_source("digits"), "src", replace=True)
    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=r"feature shape, class values, normalisation"):
        prepare_dataset(conn, "src", partitions=2)
    assert _snapshot(conn) == before


def test_a_name_too_long_to_pack_is_refused_before_a_missing_table_is_loaded(
    conn: Any, db_url: str
) -> None:
    # The run form took up to 63 characters; ensure_prepared loaded digits into the new
    # table, and only then refused its packed name, leaving the table behind.
    from automl_core.data.ensure import ensure_prepared

    before = _snapshot(conn)
    with pytest.raises(UserInputError, match=r"too long: its packed table"):
        ensure_prepared("t" * 57, partitions=2, load_if_missing="digits", db_url=db_url)
    assert _snapshot(conn) == before


def test_a_csv_keeps_its_feature_names_from_load_to_the_data_set(conn: Any, tmp_path: Path) -> None:
    # The CSV's column names were thrown away at load, so no model could tell which
    # column of a DataFrame to score was which feature.
    from automl_core.data.tables import find_table, read_source_meta

    rows = "".join(f"{i},{i % 2},{-i}\n" for i in range(40))
    (tmp_path / "t.csv").write_text("b,label,a\n" + rows)
    load_source(conn, read_source(f"csv:{tmp_path / 't.csv'}"), "t")
    meta = read_source_meta(conn, find_table(conn, "t") or 0)
    conn.rollback()
    assert meta is not None and meta["feature_names"] == ["b", "a"]  # file order, no label
    assert prepare_dataset(conn, "t", partitions=2).feature_names == ("b", "a")
    assert dataset_info(conn, "t").feature_names == ("b", "a")
    with conn.cursor() as cur:  # rows changed in SQL: the comment's names no longer fit
        cur.execute("UPDATE t SET features = features || 0::real")
    conn.commit()
    info = prepare_dataset(conn, "t", partitions=2)
    assert info.feature_shape == (3,) and info.feature_names is None
    with conn.cursor() as cur:  # a data set's row without names is NULL, not JSON null
        cur.execute("SELECT feature_names IS NULL FROM automl.datasets WHERE name = 't'")
        assert cur.fetchone() == (True,)
    conn.rollback()
