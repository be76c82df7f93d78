"""Optimisers chosen by name: "sgd", "adam", "adamw", "rmsprop".

Keys read from a configuration (defaults in brackets):

- ``optimizer`` ["adam"];
- ``lr`` [sgd 0.01, the others 0.001] (> 0);
- ``momentum`` [0.0] for sgd and rmsprop, in [0, 1);
- ``nesterov`` [false] for sgd; requires momentum > 0;
- ``weight_decay`` [adamw 0.01 (torch's default), the others 0.0] (>= 0).

Keys that do not apply to the chosen optimiser are ignored, like any unknown key, so a
search space may set ``momentum`` for every trial whatever the optimiser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from automl_core.errors import UserInputError
from automl_core.training.params import get_bool, get_choice, get_float

__all__ = [
    "DEFAULT_OPTIMIZER",
    "OPTIMIZER_NAMES",
    "OptimizerSettings",
    "build_optimizer",
    "optimizer_settings",
]

OPTIMIZER_NAMES = ("sgd", "adam", "adamw", "rmsprop")
DEFAULT_OPTIMIZER = "adam"

# Keras' defaults for lr (torch's SGD has no useful default); torch's for the rest.
_DEFAULT_LR = {"sgd": 0.01, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.001}
_DEFAULT_WEIGHT_DECAY = {"sgd": 0.0, "adam": 0.0, "adamw": 0.01, "rmsprop": 0.0}


@dataclass(frozen=True)
class OptimizerSettings:
    """The validated optimiser hyperparameters of one configuration."""

    name: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float


def optimizer_settings(config: Mapping[str, Any]) -> OptimizerSettings:
    """Read and validate the optimiser keys of ``config``.

    Raises:
        UserInputError: an unknown optimiser name (the message lists the names), lr <= 0,
            momentum outside [0, 1), weight_decay < 0, or nesterov with zero momentum.
    """
    name = get_choice(config, "optimizer", DEFAULT_OPTIMIZER, OPTIMIZER_NAMES)
    lr = get_float(config, "lr", _DEFAULT_LR[name], minimum=0.0, min_inclusive=False)
    weight_decay = get_float(config, "weight_decay", _DEFAULT_WEIGHT_DECAY[name], minimum=0.0)
    momentum = 0.0
    nesterov = False
    if name in ("sgd", "rmsprop"):
        momentum = get_float(config, "momentum", 0.0, minimum=0.0, maximum=1.0, max_inclusive=False)
    if name == "sgd":
        nesterov = get_bool(config, "nesterov", False)
        if nesterov and momentum == 0.0:
            raise UserInputError(
                f"The value of 'nesterov' is true, but 'momentum' is {momentum}: Nesterov "
                "momentum needs momentum > 0 (e.g. 0.9), or set nesterov to false."
            )
    return OptimizerSettings(name, lr, momentum, nesterov, weight_decay)


def build_optimizer(
    config: OptimizerSettings | Mapping[str, Any], params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """A torch optimiser over ``params`` as ``config`` (settings, or a configuration to
    read them from) describes.

    Raises:
        UserInputError: as :func:`optimizer_settings`.
    """
    s = config if isinstance(config, OptimizerSettings) else optimizer_settings(config)
    if s.name == "sgd":
        return torch.optim.SGD(
            params, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay
        )
    if s.name == "adam":
        return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
    if s.name == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.RMSprop(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
