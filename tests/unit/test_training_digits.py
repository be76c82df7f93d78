"""End to end on real data: sklearn's bundled digits (1797 8x8 images, no download).

The training split is cut into two partitions and each model hops between them every
epoch, as under model hopper parallelism; validation accuracy must pass 0.9.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from automl_core.training import evaluate_partition, predict, train_partition

EPOCHS = 4


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread, as the executor gives each worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    data = load_digits()
    x = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    train, valid = order[:1437], order[1437:]
    # One mean and std over the training split, as the data layer normalises.
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return {"x_train": x[train], "y_train": y[train], "x_valid": x[valid], "y_valid": y[valid]}


@pytest.mark.parametrize(
    "config",
    [
        {"architecture": "mlp", "hidden": 64, "optimizer": "adam", "lr": 0.003},
        {"architecture": "cnn2d", "channels": 16, "optimizer": "adam", "lr": 0.003},
    ],
    ids=lambda c: c["architecture"],
)
def test_reaches_90_percent_validation_accuracy(
    config: dict[str, Any], digits: dict[str, np.ndarray]
) -> None:
    config = {**config, "batch_size": 32}
    kw: dict[str, Any] = {"input_shape": (64,), "num_classes": 10}
    partitions = np.array_split(np.arange(len(digits["y_train"])), 2)
    state = None
    for epoch in range(1, EPOCHS + 1):
        seen = 0.0
        # Alternate the partition order per epoch, as the asynchronous hopper may.
        for part in partitions if epoch % 2 else partitions[::-1]:
            state, metrics = train_partition(
                config,
                state,
                digits["x_train"][part],
                digits["y_train"][part],
                epoch=epoch,
                seed=7,
                **kw,
            )
            seen += metrics["samples"]
        assert seen == 1437
    assert state is not None
    valid = evaluate_partition(config, state, digits["x_valid"], digits["y_valid"], **kw)
    accuracy = valid["correct"] / valid["samples"]
    assert valid["samples"] == 360
    assert accuracy > 0.9, accuracy
    labels = predict(config, state, digits["x_valid"], **kw)
    assert (labels == digits["y_valid"]).mean() == pytest.approx(accuracy)
