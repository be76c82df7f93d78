"""TrainingConfig: validated once, typed, frozen, picklable; the same errors as a dict."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import numpy as np
import pytest

from automl_core.errors import UserInputError
from automl_core.training import TrainingConfig, TrainingSession, train_partition
from automl_core.training.config import training_config
from automl_core.training.optimizers import OptimizerSettings

CONFIG = {"architecture": "mlp", "hidden": 8, "optimizer": "sgd", "lr": 0.1, "batch_size": 4}


def test_fields_are_read_once_from_the_dict() -> None:
    cfg = TrainingConfig.from_mapping(CONFIG)
    assert cfg.architecture == "mlp" and cfg.batch_size == 4
    assert cfg.optimizer == OptimizerSettings("sgd", 0.1, 0.0, False, 0.0)
    assert cfg.params == CONFIG and cfg.params is not CONFIG
    assert TrainingConfig.from_mapping({}).batch_size == 32
    assert training_config(cfg) is cfg


def test_it_is_frozen_hashable_and_pickles() -> None:
    cfg = TrainingConfig.from_mapping(CONFIG)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.batch_size = 8  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and hash(again) == hash(cfg)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"architecture": "nope"}, "'architecture' is 'nope', which is not a registered"),
        ({"batch_size": 0}, "'batch_size' is 0, but must be >= 1"),
        ({"batch_size": 2.5}, "'batch_size' is 2.5, but must be a whole number"),
        ({"optimizer": "lbfgs"}, "'optimizer' is 'lbfgs', but must be one of"),
        ({"lr": -1}, "'lr' is -1, but must be > 0.0"),
        ({"optimizer": "sgd", "nesterov": True}, "Nesterov momentum needs momentum > 0"),
    ],
)
def test_bad_configurations_get_the_same_message_either_way(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserInputError, match=message):
        TrainingConfig.from_mapping(config)
    with pytest.raises(UserInputError, match=message):
        TrainingSession.open(config, None, input_shape=(4,), num_classes=2, seed=0)


def test_a_typed_config_trains_exactly_as_its_dict() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    kw: dict[str, Any] = {"input_shape": (4,), "num_classes": 2, "epoch": 1, "seed": 3}
    from_dict, m1 = train_partition(CONFIG, None, x, y, device="cpu", **kw)
    typed = pickle.loads(pickle.dumps(TrainingConfig.from_mapping(CONFIG)))
    from_typed, m2 = train_partition(typed, None, x, y, device="cpu", **kw)
    assert from_dict == from_typed and m1["loss_sum"] == m2["loss_sum"]
