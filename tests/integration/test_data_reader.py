"""dataset_info and read_partition against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest

from automl_core.data.load import load_source
from automl_core.data.prepare import prepare_dataset
from automl_core.data.reader import dataset_info, normalize, read_partition
from automl_core.data.sources import read_source
from automl_core.errors import UserInputError


@pytest.fixture
def images(conn: Any, tmp_path: Path) -> np.ndarray:
    """A prepared dataset 'imgs' of 50 [3, 4, 4] images, 2 partitions, buffers of 4 rows."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 3, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "i.npz", x=x, y=np.arange(50) % 5, x_test=x[:10], y_test=np.arange(10) % 5)
    load_source(conn, read_source(f"npz:{tmp_path / 'i.npz'}"), "imgs")
    prepare_dataset(conn, "imgs", partitions=2, buffer_size=4)
    return x


def test_read_partition_returns_shaped_normalised_rows(conn: Any, images: np.ndarray) -> None:
    info = dataset_info(conn, "imgs")
    assert info.feature_shape == (3, 4, 4)
    assert info.rows_per_partition == {"train": [25, 25], "valid": [5, 5]}
    x0, y0 = read_partition(conn, "imgs", 0)
    x1, y1 = read_partition(conn, "imgs", 1, "train", info=info)
    assert x0.shape == (25, 3, 4, 4) and x0.dtype == np.float32 and y0.dtype == np.int64
    # the stored rows are normalize() of some source rows: each must match one exactly
    expected = normalize(images, info).reshape(50, -1)
    for xs, ys in ((x0, y0), (x1, y1)):
        for row, label in zip(xs.reshape(len(xs), -1), ys, strict=True):
            match = np.flatnonzero(np.all(np.isclose(expected, row, atol=1e-6), axis=1))
            assert match.size == 1 and int(match[0]) % 5 == label
    xv, yv = read_partition(conn, "imgs", 1, "valid")
    assert xv.shape == (5, 3, 4, 4) and yv.shape == (5,)


def test_reader_holds_no_transaction_it_did_not_find(conn: Any, images: np.ndarray) -> None:
    idle = psycopg2.extensions.TRANSACTION_STATUS_IDLE
    read_partition(conn, "imgs", 0)
    dataset_info(conn, "imgs")
    # an idle worker connection must not hold a lock that blocks a re-run of prepare
    assert conn.get_transaction_status() == idle
    with conn.cursor() as cur:
        cur.execute("SELECT 1")  # the caller's own transaction is kept open
    read_partition(conn, "imgs", 0)
    assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
    conn.rollback()


def test_prepare_is_not_blocked_by_a_reader_connection(
    conn: Any, images: np.ndarray, db_url: str
) -> None:
    worker = psycopg2.connect(db_url)
    try:
        read_partition(worker, "imgs", 1)
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = '2s'")  # fail instead of hanging
        conn.commit()
        prepare_dataset(conn, "imgs", partitions=3)
        assert dataset_info(worker, "imgs").partitions == 3
    finally:
        worker.close()


@pytest.mark.parametrize(
    ("partition", "split", "match"),
    [
        (2, "train", "partitions 0..1"),
        (-1, "train", "partitions 0..1"),
        (0, "test", "split is 'test'"),
    ],
)
def test_bad_partition_or_split(
    conn: Any, images: np.ndarray, partition: int, split: str, match: str
) -> None:
    with pytest.raises(UserInputError, match=match):
        read_partition(conn, "imgs", partition, split)


def test_unknown_dataset_names_prepare(conn: Any) -> None:
    with pytest.raises(
        UserInputError, match=r"'nope' has not been prepared: run `automl data prepare nope"
    ):
        dataset_info(conn, "nope")
    with pytest.raises(UserInputError, match="not a plain SQL identifier"):
        read_partition(conn, "x;y", 0)


def test_unknown_dataset_before_any_migration(make_database: Any) -> None:
    connection = psycopg2.connect(make_database())
    try:
        with pytest.raises(UserInputError, match="automl data prepare"):
            dataset_info(connection, "digits")
        with connection.cursor() as cur:  # the transaction is not aborted
            cur.execute("SELECT 1")
    finally:
        connection.close()


def test_a_changed_packed_table_is_detected(conn: Any, images: np.ndarray) -> None:
    with conn.cursor() as cur:
        cur.execute(
            """DELETE FROM imgs_packed WHERE split = 'train' AND "partition" = 1 AND buffer = 2"""
        )
    conn.commit()
    read_partition(conn, "imgs", 0)  # untouched partition still reads
    with pytest.raises(RuntimeError, match="run `automl data prepare imgs` again"):
        read_partition(conn, "imgs", 1)
