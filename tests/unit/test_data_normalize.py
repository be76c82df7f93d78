"""normalize(): new rows scaled as the packed data was."""

from __future__ import annotations

import numpy as np
import pytest

from automl_core.data.reader import DatasetInfo, normalize
from automl_core.errors import UserInputError

INFO = DatasetInfo(
    name="imgs",
    feature_shape=(2, 3),
    num_classes=2,
    class_values=[0, 1],
    partitions=2,
    n_train=10,
    n_valid=2,
    normalization={"mean": 4.0, "std": 2.0},
)


@pytest.mark.parametrize("shape", [(5, 2, 3), (5, 6)])
def test_normalize_batches(shape: tuple[int, ...]) -> None:
    x = np.arange(30, dtype=np.float64).reshape(shape)
    out = normalize(x, INFO)
    assert out.dtype == np.float32 and out.shape == (5, 2, 3)
    np.testing.assert_allclose(out.reshape(5, 6), (x.reshape(5, 6) - 4.0) / 2.0)


@pytest.mark.parametrize("shape", [(2, 3), (6,)])
def test_normalize_one_row(shape: tuple[int, ...]) -> None:
    out = normalize(np.full(shape, 6.0), INFO)
    assert out.shape == (1, 2, 3)
    np.testing.assert_array_equal(out, np.ones((1, 2, 3), dtype=np.float32))


@pytest.mark.parametrize("shape", [(5, 7), (5, 3, 2), (7,), ()])
def test_normalize_refuses_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(UserInputError, match=r"do not match dataset 'imgs'.*\(2, 3\)"):
        normalize(np.zeros(shape), INFO)


def test_normalize_refuses_non_numbers() -> None:
    with pytest.raises(UserInputError, match="features must be numbers"):
        normalize(np.array([["a"] * 6]), INFO)


def test_normalize_matches_packing_arithmetic() -> None:
    from automl_core.data.packing import Normalization

    x = np.random.default_rng(0).normal(3, 7, size=(20, 2, 3)).astype(np.float32)
    packed = Normalization(mean=4.0, std=2.0).apply(x)
    np.testing.assert_array_equal(normalize(x, INFO), packed)  # bit for bit


def test_a_shape_error_names_the_source_and_one_spelling_of_a_flat_shape() -> None:
    # Before: "pass [n, 6] or [n, 6]", and no way to name the table the rows came from.
    flat = DatasetInfo(**{**INFO.__dict__, "feature_shape": (6,)})
    with pytest.raises(UserInputError) as caught:
        normalize(np.zeros((4, 5)), flat)
    assert str(caught.value).endswith("pass an array of shape [n, 6].")
    with pytest.raises(UserInputError) as caught:
        normalize(np.zeros((4, 5)), flat, source="the table 'narrow'")
    message = str(caught.value)
    assert message.startswith("The features of the table 'narrow' have shape (5,) per row")
    assert "(6 values per row, shape (6,))" in message and "[n," not in message
    with pytest.raises(UserInputError, match=r"^The features of the table 't' have dtype"):
        normalize(np.array([["a"] * 6]), flat, source="the table 't'")
