"""A user architecture, registered only by importing this module.

Named by ``AUTOML_ARCHITECTURE_MODULES`` in a test, so that a fresh process (the
``automl`` command) can only know it if the entry point loads that variable's modules.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from automl_core.training.registry import register_architecture


@register_architecture("user_linear", replace=True)
def build(config: Any, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    features = 1
    for n in input_shape:
        features *= n
    return nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))
