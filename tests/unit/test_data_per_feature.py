"""Per-feature normalisation: the statistics, their stored form, and applying them to new
rows exactly as packing did. Before, every data set had one global mean and std, so a
tabular source's columns in different units (dollars beside years) stayed unbalanced."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from automl_core.data import packing
from automl_core.data.packing import Normalization, fit_normalization, normalization_kind
from automl_core.data.reader import DatasetInfo, normalize
from automl_core.export import ExportedModel
from automl_core.export.card import CARD_FORMAT


def _columns(n: int = 1000, seed: int = 0) -> np.ndarray:
    """Columns in very different units: ~1e6 (dollars), ~1e-3, ~40, a large offset."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            rng.normal(1e6, 2e5, n),
            rng.normal(2e-3, 5e-4, n),
            rng.normal(40, 12, n),
            1e4 + rng.normal(0, 3, n),  # a naive float32 sum of squares loses this variance
        ],
        axis=1,
    ).astype(np.float32)


def test_per_feature_statistics_match_numpy_per_column() -> None:
    x = _columns()
    rows = np.random.default_rng(1).permutation(1000)[:777]
    norm = fit_normalization(x, rows, per_feature=True, chunk_rows=50)
    assert norm.kind == "per-feature"
    expected = x[rows].astype(np.float64)
    np.testing.assert_allclose(norm.mean, expected.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(norm.std, expected.std(axis=0), rtol=1e-9)  # population std
    z = norm.apply(x[rows])
    assert z.dtype == np.float32 and z.shape == (777, 4)
    # The float32 mean of the offset column is off by up to half its ulp (~5e-4 / 3 std).
    np.testing.assert_allclose(z.astype(np.float64).mean(axis=0), 0.0, atol=2e-4)
    np.testing.assert_allclose(z.astype(np.float64).std(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 999])
def test_chunked_statistics_equal_unchunked(chunk_rows: int) -> None:
    x = _columns(300, seed=3)
    rows = np.arange(300)
    whole = fit_normalization(x, rows, per_feature=True, chunk_rows=10_000)
    chunked = fit_normalization(x, rows, per_feature=True, chunk_rows=chunk_rows)
    np.testing.assert_allclose(chunked.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(chunked.std, whole.std, rtol=1e-10)
    assert chunked.isclose(whole)


def test_large_offsets_keep_their_precision() -> None:
    # Values near 1e6 that differ by 1/64: float32 holds them exactly; a sum of squares
    # (1e12 each) in float64 would leave about 1e-4 of the variance's 16 digits.
    base = np.float32(1e6) + np.arange(64, dtype=np.float32) / 64
    x = np.repeat(base, 50).reshape(-1, 1).astype(np.float32)
    norm = fit_normalization(x, np.arange(x.shape[0]), per_feature=True, chunk_rows=33)
    expected = x.astype(np.float64)
    assert np.asarray(norm.mean) == pytest.approx(expected.mean(), rel=1e-15)
    assert np.asarray(norm.std) == pytest.approx(expected.std(), rel=1e-9)


def test_a_constant_column_gets_std_one_and_is_only_centred() -> None:
    x = _columns(40)
    x[:, 2] = np.float32(0.1)  # not exactly representable: the mean must still be exact
    norm = fit_normalization(x, np.arange(40), per_feature=True, chunk_rows=16)
    assert np.asarray(norm.std)[2] == 1.0
    assert not np.any(norm.apply(x)[:, 2])


def test_multi_dimensional_rows_are_flattened_in_c_order() -> None:
    x = np.random.default_rng(2).normal(size=(30, 2, 3)).astype(np.float32)
    x[:, 1, 2] += 100
    norm = fit_normalization(x, np.arange(30), per_feature=True)
    means = np.asarray(norm.mean)
    assert means.shape == (6,) and means[5] == pytest.approx(x[:, 1, 2].astype(np.float64).mean())
    z = norm.apply(x)  # images packed per feature: [n, 2, 3] in, the same shape out
    assert z.shape == x.shape
    assert np.array_equal(z.reshape(30, 6), norm.apply(x.reshape(30, 6)))
    assert abs(z[:, 1, 2].mean()) < 1e-5 and z[:, 1, 2].std() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="needs rows of 6 values"):
        norm.apply(x[:, :, :2])


def test_global_and_per_feature_stored_forms_round_trip() -> None:
    glob = Normalization(mean=2.5, std=0.5)
    assert glob.as_dict() == {"mean": 2.5, "std": 0.5} and glob.kind == "global"
    per = Normalization(mean=(1.0, -2.0), std=(3.0, 4.0))
    assert per.as_dict() == {"mean": [1.0, -2.0], "std": [3.0, 4.0]}
    for norm in (glob, per):
        assert Normalization.from_dict(norm.as_dict(), n_features=2) == norm
    # an old record (schema before per-feature statistics), integers and all
    assert Normalization.from_dict({"mean": 4, "std": 2}) == Normalization(4.0, 2.0)
    assert Normalization.from_dict({"mean": [1, 2], "std": [0, 2]}).std == (1.0, 2.0)


@pytest.mark.parametrize(
    "values",
    [
        {"mean": [1.0, 2.0], "std": 1.0},  # one list, one number
        {"mean": [1.0, 2.0], "std": [1.0]},  # lists of other lengths
        {"mean": [1.0, 2.0, 3.0], "std": [1.0, 1.0, 1.0]},  # not one per feature
        {"mean": [], "std": []},
        {"mean": [1.0, "x"], "std": [1.0, 1.0]},
        {"mean": [1.0, float("nan")], "std": [1.0, 1.0]},
        {"mean": True, "std": 1.0},
        {"mean": "abc", "std": 1.0},
        [1.0, 2.0],
    ],
)
def test_bad_stored_forms_are_refused_naming_them(values: Any) -> None:
    with pytest.raises(ValueError, match=r"^data.normalization is .*one per feature"):
        Normalization.from_dict(values, n_features=2, what="data.normalization")


def test_auto_is_per_feature_for_csv_columns_and_global_for_arrays() -> None:
    assert normalization_kind("auto", "csv:/data/churn.csv") == "per-feature"
    for source in ("digits", "signals", "npz:/d/x.npz", "cifar10:/d", "flowers"):
        assert normalization_kind("auto", source) == "global"
    assert normalization_kind("global", "csv:/data/churn.csv") == "global"
    assert normalization_kind("per-feature", "digits") == "per-feature"
    with pytest.raises(ValueError, match="must be one of"):
        normalization_kind("minmax", "digits")
    assert packing.NORMALIZE_CHOICES == ("auto", "per-feature", "global")


PER_FEATURE = DatasetInfo(
    name="churn",
    feature_shape=(3,),
    num_classes=2,
    class_values=[0, 1],
    partitions=2,
    n_train=10,
    n_valid=2,
    normalization={"mean": [1e6, 2e-3, 40.0], "std": [2e5, 5e-4, 0.0]},
)


def test_normalize_applies_per_feature_statistics_as_packing_did() -> None:
    x = np.array([[1.2e6, 2.5e-3, 52.0], [8e5, 1.5e-3, 40.0]])
    out = normalize(x, PER_FEATURE)
    np.testing.assert_allclose(out, [[1.0, 1.0, 12.0], [-1.0, -1.0, 0.0]], rtol=1e-6)
    packed = Normalization(mean=(1e6, 2e-3, 40.0), std=(2e5, 5e-4, 1.0)).apply(x.astype(np.float32))
    np.testing.assert_array_equal(out, packed)  # bit for bit
    assert normalize(x[0], PER_FEATURE).shape == (1, 3)  # one row


def test_an_exported_card_with_per_feature_statistics_predicts_normalised_rows() -> None:
    card = {
        "format": CARD_FORMAT,
        "data": {
            "dataset": "churn",
            "feature_shape": [3],
            "num_classes": 2,
            "class_values": [0, 1],
            "normalization": {"mean": [1e6, 2e-3, 40], "std": [2e5, 5e-4, 12]},
        },
    }
    info = ExportedModel(config={}, state=b"", card=card).dataset_info()
    assert info.normalization == {"mean": [1e6, 2e-3, 40.0], "std": [2e5, 5e-4, 12.0]}
    out = normalize(np.array([[1.2e6, 1.5e-3, 16.0]]), info)
    np.testing.assert_allclose(out, [[1.0, -1.0, -2.0]], rtol=1e-6)
    card["data"]["normalization"] = {"mean": [0.0, 0.0], "std": [1.0, 1.0]}  # type: ignore[index]
    with pytest.raises(ValueError, match=r"lists of 3 finite numbers \(one per feature\), not 2"):
        ExportedModel(config={}, state=b"", card=card).dataset_info()


def test_a_std_too_small_for_float32_is_one_and_a_negative_one_is_refused() -> None:
    # A review packed a column of zeros and one 1.4e-45: its std (~7e-47) is not 0 in
    # float64 but divides to inf in float32, and the packed table was full of NaN.
    x = np.zeros((400, 2), dtype=np.float32)
    x[0, 0] = np.float32(1.4e-45)
    x[:, 1] = np.arange(400)
    norm = fit_normalization(x, np.arange(400), per_feature=True)
    assert np.asarray(norm.std)[0] == 1.0 and np.isfinite(norm.apply(x)).all()
    assert Normalization.from_dict({"mean": [0.0], "std": [1e-50]}).std == (1.0,)
    assert Normalization.from_dict({"mean": 0.0, "std": 1e-39}).std == 1.0
    with pytest.raises(ValueError, match="no std may be negative"):
        Normalization.from_dict({"mean": [0.0, 1.0], "std": [1.0, -2.0]})
