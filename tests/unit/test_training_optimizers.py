"""Optimisers by name, their defaults, and the errors for bad hyperparameters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from automl_core.errors import UserInputError
from automl_core.training import OPTIMIZER_NAMES, build_optimizer, optimizer_settings


def _params() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(3, 2).parameters())


@pytest.mark.parametrize(
    ("config", "cls", "group"),
    [
        (
            {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
            torch.optim.SGD,
            {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0},
        ),
        ({"optimizer": "sgd"}, torch.optim.SGD, {"lr": 0.01, "momentum": 0.0}),
        ({"optimizer": "adam", "weight_decay": 1e-4}, torch.optim.Adam, {"weight_decay": 1e-4}),
        ({"optimizer": "adamw"}, torch.optim.AdamW, {"lr": 0.001, "weight_decay": 0.01}),
        (
            {"optimizer": "rmsprop", "lr": 0.002, "momentum": 0.5},
            torch.optim.RMSprop,
            {"lr": 0.002, "momentum": 0.5},
        ),
        ({}, torch.optim.Adam, {"lr": 0.001, "weight_decay": 0.0}),
    ],
)
def test_builds_the_named_optimizer(
    config: dict[str, Any], cls: type[torch.optim.Optimizer], group: dict[str, Any]
) -> None:
    opt = build_optimizer(config, _params())
    assert type(opt) is cls
    for key, value in group.items():
        assert opt.param_groups[0][key] == value, key


def test_every_name_builds_and_steps() -> None:
    for name in OPTIMIZER_NAMES:
        layer = torch.nn.Linear(3, 2)
        before = layer.weight.detach().clone()
        opt = build_optimizer({"optimizer": name, "momentum": 0.9, "lr": 0.1}, layer.parameters())
        layer(torch.ones(4, 3)).sum().backward()
        opt.step()
        assert not torch.equal(before, layer.weight), name


def test_keys_of_other_optimizers_are_ignored() -> None:
    # A search space may set momentum/nesterov for every trial.
    settings = optimizer_settings({"optimizer": "adam", "momentum": 0.0, "nesterov": True})
    assert settings.name == "adam" and settings.momentum == 0.0 and not settings.nesterov


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"optimizer": "sgd", "nesterov": True}, "'nesterov'.*momentum > 0"),
        ({"optimizer": "sgd", "nesterov": True, "momentum": 0.0}, "momentum > 0"),
        ({"optimizer": "adagrad"}, "'optimizer' is 'adagrad'.*'adam', 'adamw', 'rmsprop', 'sgd'"),
        ({"optimizer": "SGD"}, "'optimizer' is 'SGD'"),
        ({"lr": 0}, r"'lr' is 0, but must be > 0"),
        ({"lr": -0.1}, "'lr' is -0.1"),
        ({"lr": "fast"}, "'lr' is 'fast'"),
        ({"optimizer": "sgd", "momentum": 1.0}, r"'momentum' is 1.0.*\[0.0, 1.0\)"),
        ({"optimizer": "rmsprop", "momentum": -0.5}, "'momentum' is -0.5"),
        ({"weight_decay": -1e-3}, "'weight_decay' is -0.001.*>= 0.0"),
    ],
)
def test_bad_values_are_user_errors(config: dict[str, Any], match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        build_optimizer(config, _params())
