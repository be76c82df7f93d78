"""A user architecture that builds but cannot train: its forward pass raises in training.

Named by AUTOML_ARCHITECTURE_MODULES in a test, it lets a configuration pass every check
before training (the model builds on the meta device) and then fail on the workers, the
way a real model fails mid-training (a shape bug in forward, an out-of-memory error).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from automl_core.training.registry import register_architecture


class _FailsInTraining(nn.Module):
    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError("this model cannot train (a test architecture)")
        return self.linear(x.flatten(1))


@register_architecture("fails_in_training", replace=True)
def build(config: Any, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    features = 1
    for n in input_shape:
        features *= n
    return _FailsInTraining(features, num_classes)
