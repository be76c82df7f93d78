"""Assigning rows to partitions (pure): determinism, validation choice, Greenplum default P."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from automl_core.data.prepare import _partition_count, make_plan
from automl_core.data.scan import SourceRows
from automl_core.data.tables import SEGMENT_COUNT_SQL
from automl_core.errors import UserInputError
from automl_core.store.dialect import Dialect


def _rows(order: np.ndarray, n_test: int = 0) -> SourceRows:
    n = order.size
    ids = np.arange(n)[order]
    return SourceRows(
        ids=ids,
        is_test=ids >= n - n_test,
        labels=ids % 3,
        x=ids.astype(np.float32)[:, None],
    )


def _ids(rows: SourceRows, parts: list[np.ndarray]) -> list[list[int]]:
    return [rows.ids[p].tolist() for p in parts]


def test_plan_depends_on_ids_not_on_read_order() -> None:
    rng = np.random.default_rng(3)
    a = _rows(np.arange(200))
    b = _rows(rng.permutation(200))  # the server returned rows in another order
    pa, pb = make_plan(a, 4, 0.25, seed=7), make_plan(b, 4, 0.25, seed=7)
    assert _ids(a, pa.train) == _ids(b, pb.train)
    assert _ids(a, pa.valid) == _ids(b, pb.valid)
    other = make_plan(a, 4, 0.25, seed=8)
    assert _ids(a, other.train) != _ids(a, pa.train)


def test_fraction_plan_is_stratified_and_covers_train_rows_once() -> None:
    rows = _rows(np.arange(300), n_test=30)
    plan = make_plan(rows, 3, 0.2, seed=0)
    train = np.concatenate(plan.train)
    valid = np.concatenate(plan.valid)
    assert not rows.is_test[train].any() and not rows.is_test[valid].any()
    assert sorted(rows.ids[np.concatenate([train, valid])].tolist()) == list(range(270))
    assert valid.size == 54
    assert np.bincount(rows.labels[valid]).tolist() == [18, 18, 18]
    assert [p.size for p in plan.train] == [72, 72, 72]
    assert [p.size for p in plan.valid] == [18, 18, 18]


def test_test_split_plan_uses_test_rows_for_validation() -> None:
    rows = _rows(np.arange(100), n_test=10)
    plan = make_plan(rows, 4, None, seed=0)
    assert sorted(rows.ids[np.concatenate(plan.valid)].tolist()) == list(range(90, 100))
    assert sorted(rows.ids[np.concatenate(plan.train)].tolist()) == list(range(90))
    assert [p.size for p in plan.valid] == [3, 3, 2, 2]
    assert plan.validation_from == "test split"


class _FakeCursor:
    def __init__(self, log: list[str], result: int) -> None:
        self.log, self.result = log, result

    def __enter__(self) -> _FakeCursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def execute(self, query: str, params: Any = None) -> None:
        self.log.append(query)

    def fetchone(self) -> tuple[int]:
        return (self.result,)


class _FakeConn:
    def __init__(self, segments: int) -> None:
        self.log: list[str] = []
        self.segments = segments

    def cursor(self) -> _FakeCursor:
        return _FakeCursor(self.log, self.segments)


def test_greenplum_defaults_partitions_to_the_primary_segment_count() -> None:
    conn = _FakeConn(segments=8)
    assert _partition_count(conn, Dialect.greenplum(), None) == 8
    assert conn.log == [SEGMENT_COUNT_SQL]
    assert "gp_segment_configuration" in SEGMENT_COUNT_SQL
    assert "role = 'p' AND content >= 0" in SEGMENT_COUNT_SQL
    assert _partition_count(conn, Dialect.greenplum(), 3) == 3  # an explicit P wins


def test_postgres_requires_partitions() -> None:
    conn = _FakeConn(segments=8)
    with pytest.raises(UserInputError, match="--partitions is required on PostgreSQL"):
        _partition_count(conn, Dialect.postgres(), None)
    assert conn.log == []  # no Greenplum catalog query on PostgreSQL
