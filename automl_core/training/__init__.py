"""The torch side of model selection: architectures, optimisers, one training pass,
evaluation, prediction and model state as bytes.

This is the only package of ``automl_core`` (besides executor worker code) that imports
torch; importing it costs torch's import time (~2 s), so code that only plans work
(search, scheduling, the DAG files) must not import it.

The contract the hopper relies on (docs/reference.md, "Training")::

    state, metrics = train_partition(config, state, x, y, input_shape=..., num_classes=...,
                                     epoch=..., seed=...)
    metrics = evaluate_partition(config, state, x, y, input_shape=..., num_classes=...)
    labels = predict(config, state, x, input_shape=..., num_classes=...)
"""

from automl_core.training.config import TrainingConfig
from automl_core.training.device import default_device, resolve_device
from automl_core.training.engine import (
    evaluate_partition,
    predict,
    predict_proba,
    train_partition,
    validate_config,
)
from automl_core.training.optimizers import OPTIMIZER_NAMES, build_optimizer, optimizer_settings
from automl_core.training.params import get_bool, get_choice, get_float, get_int
from automl_core.training.registry import (
    architecture_names,
    build_model,
    register_architecture,
    unregister_architecture,
)
from automl_core.training.session import TrainingSession
from automl_core.training.state import InvalidStateError, TrainingState, from_bytes, to_bytes

__all__ = [
    "OPTIMIZER_NAMES",
    "InvalidStateError",
    "TrainingConfig",
    "TrainingSession",
    "TrainingState",
    "architecture_names",
    "build_model",
    "build_optimizer",
    "default_device",
    "evaluate_partition",
    "from_bytes",
    "get_bool",
    "get_choice",
    "get_float",
    "get_int",
    "optimizer_settings",
    "predict",
    "predict_proba",
    "register_architecture",
    "resolve_device",
    "to_bytes",
    "train_partition",
    "unregister_architecture",
    "validate_config",
]
