"""Packing maths: partition sizes, shuffles, stratified validation, buffers, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automl_core.data import packing
from automl_core.errors import UserInputError


@given(n=st.integers(0, 10_000), p=st.integers(1, 64))
def test_partition_sizes_are_near_equal_and_cover_all_rows(n: int, p: int) -> None:
    sizes = packing.partition_sizes(n, p)
    assert len(sizes) == p
    assert sum(sizes) == n
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


def test_partition_sizes_refuse_zero_partitions() -> None:
    with pytest.raises(ValueError, match="partitions is 0"):
        packing.partition_sizes(10, 0)


@given(n=st.integers(0, 500), p=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=50)
def test_split_partitions_is_a_seeded_permutation(n: int, p: int, seed: int) -> None:
    rows = np.arange(100, 100 + n)
    parts = packing.split_partitions(rows, p, np.random.default_rng(seed))
    assert [part.size for part in parts] == packing.partition_sizes(n, p)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), rows)
    again = packing.split_partitions(rows, p, np.random.default_rng(seed))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_split_partitions_shuffles() -> None:
    rows = np.arange(1000)
    parts = packing.split_partitions(rows, 4, np.random.default_rng(0))
    assert not np.array_equal(np.concatenate(parts), rows)
    other = packing.split_partitions(rows, 4, np.random.default_rng(1))
    assert not np.array_equal(np.concatenate(parts), np.concatenate(other))


@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=400),
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 1000),
)
@settings(max_examples=100)
def test_stratified_validation_is_exact_and_proportional(
    labels: list[int], fraction: float, seed: int
) -> None:
    y = np.array(labels)
    mask = packing.stratified_validation(y, fraction, np.random.default_rng(seed))
    assert mask.dtype == bool and mask.shape == y.shape
    assert int(mask.sum()) == int(round(fraction * y.size))
    for c in np.unique(y):
        count = int((y == c).sum())
        taken = int(mask[y == c].sum())
        # floor(quota) or one more: each class keeps its share within one row
        assert abs(taken - fraction * count) < 1.0 + 1e-9


def test_stratified_validation_is_seeded() -> None:
    y = np.repeat(np.arange(3), 50)
    a = packing.stratified_validation(y, 0.2, np.random.default_rng(5))
    b = packing.stratified_validation(y, 0.2, np.random.default_rng(5))
    c = packing.stratified_validation(y, 0.2, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert [int(a[y == k].sum()) for k in range(3)] == [10, 10, 10]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_stratified_validation_refuses_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        packing.stratified_validation(np.arange(10), fraction, np.random.default_rng(0))


def test_default_buffer_size_targets_16_mib_and_at_most_a_partition() -> None:
    assert packing.default_buffer_size(1024, 10**6) == 16384
    assert packing.default_buffer_size(256, 360) == 360
    assert packing.default_buffer_size(64 << 20, 100) == 1  # a huge row: one per buffer


def test_buffer_size_limits() -> None:
    packing.check_buffer_size(1, 4)
    with pytest.raises(UserInputError, match="--buffer-size is 0"):
        packing.check_buffer_size(0, 4)
    with pytest.raises(UserInputError, match="use at most 131072 rows"):
        packing.check_buffer_size(200_000, 4096)


@given(n=st.integers(0, 1000), size=st.integers(1, 300))
def test_buffer_slices_cover_rows_in_order(n: int, size: int) -> None:
    slices = packing.buffer_slices(n, size)
    covered = [i for s in slices for i in range(n)[s]]
    assert covered == list(range(n))
    assert all(0 < s.stop - s.start <= size for s in slices)


def test_global_normalization_matches_numpy_in_chunks() -> None:
    rng = np.random.default_rng(0)
    # A large offset: a naive sum of squares in float32 would lose the variance.
    x = (1e4 + rng.normal(0, 3, size=(1000, 7))).astype(np.float32)
    rows = rng.permutation(1000)[:777]
    norm = packing.fit_normalization(x, rows, chunk_rows=50)
    expected = x[rows].astype(np.float64)
    assert norm.mean == pytest.approx(expected.mean(), rel=1e-12)
    assert norm.std == pytest.approx(expected.std(), rel=1e-9)
    z = norm.apply(x[rows])
    assert z.dtype == np.float32
    assert abs(float(z.mean())) < 1e-4 and float(z.std()) == pytest.approx(1.0, abs=1e-4)


def test_constant_features_keep_std_one() -> None:
    x = np.full((10, 3), 5.0, dtype=np.float32)
    norm = packing.fit_normalization(x, np.arange(10))
    assert norm.as_dict() == {"mean": 5.0, "std": 1.0}
    assert not np.any(norm.apply(x))


def test_normalization_needs_rows() -> None:
    with pytest.raises(ValueError, match="no rows"):
        packing.fit_normalization(np.zeros((3, 2), dtype=np.float32), np.array([], dtype=int))
