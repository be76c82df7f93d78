"""A trial's configuration, validated once into a typed, frozen ``TrainingConfig``.

A configuration arrives as a plain dict (a spec, a UI form, a search space). Everything
the engine reads from it is checked here, once, and read as fields afterwards:
``TrainingSession.open`` and the functions of ``engine.py`` take either form and convert
a dict once per call; a worker converts once per job. The object pickles, so a caller
that holds one ships it to a worker as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from automl_core.training.optimizers import OptimizerSettings, optimizer_settings
from automl_core.training.params import get_int
from automl_core.training.registry import architecture_name

__all__ = ["DEFAULT_BATCH_SIZE", "TrainingConfig", "training_config"]

DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class TrainingConfig:
    """The validated keys of one configuration.

    ``architecture`` is a registered name; ``batch_size`` rows per training step (>= 1);
    ``params`` a copy of the whole configuration, which the architecture's builder reads
    its own keys from (``hidden``, ``depth``, ``dropout``, ...; checked when the model is
    built, since they need the data's shape).
    """

    architecture: str
    optimizer: OptimizerSettings
    batch_size: int
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> TrainingConfig:
        """Validate ``config`` (keys in docs/reference.md, "Training").

        Raises:
            UserInputError: an unknown architecture or optimiser (the message lists the
                names), a ``batch_size`` that is not a whole number >= 1, or a bad
                optimiser hyperparameter (see ``optimizers.py``).
        """
        return cls(
            # The first bad key is reported: architecture, then batch size, then optimiser.
            architecture=architecture_name(config),
            batch_size=get_int(config, "batch_size", DEFAULT_BATCH_SIZE, minimum=1),
            optimizer=optimizer_settings(config),
            params=dict(config),
        )


def training_config(config: TrainingConfig | Mapping[str, Any]) -> TrainingConfig:
    """``config`` as a ``TrainingConfig``: unchanged when it is one, else validated.

    Raises:
        UserInputError: as :meth:`TrainingConfig.from_mapping`.
    """
    if isinstance(config, TrainingConfig):
        return config
    return TrainingConfig.from_mapping(config)
