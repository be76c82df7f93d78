"""One sub-epoch of training, evaluation and prediction, from state bytes to state bytes.

These are the functions the hopper runner and the Dask worker code call (see
docs/reference.md, "Training"). A model's state arrives as bytes (or None for a new
model), is trained for one pass over one partition, and leaves as bytes: nothing about
a model stays behind on the worker, so any worker can continue it next. How the random
draws, the RNG state and the device are handled is described in ``session.py``.

Each function runs on ``device`` (default: :func:`~automl_core.training.device.default_device`,
the GPU when there is one) and moves the partition there once per call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from automl_core.training.config import TrainingConfig, training_config
from automl_core.training.optimizers import optimizer_settings
from automl_core.training.registry import build_architecture
from automl_core.training.session import EVAL_BATCH_SIZE, ArrayLike, TrainingSession

__all__ = [
    "evaluate_partition",
    "keys_read",
    "predict",
    "predict_proba",
    "train_partition",
    "validate_config",
]

StateBytes = bytes | bytearray | memoryview
# A dict is validated once per call; a TrainingConfig was validated already.
Config = TrainingConfig | Mapping[str, Any]


def validate_config(config: Config, input_shape: Sequence[int], num_classes: int) -> None:
    """Check every key the engine reads, before anything runs or is written.

    The model is built on torch's "meta" device, so this allocates no weights and
    draws no random numbers even for a large model.

    Raises:
        UserInputError: as the engine would raise for this configuration and data shape
            (unknown architecture or optimiser, a bad hyperparameter, a shape the
            architecture cannot take).
    """
    cfg = training_config(config)
    with torch.device("meta"):
        build_architecture(cfg.architecture, cfg.params, input_shape, num_classes)


class _ReadRecorder(dict[str, Any]):
    """A configuration (a real dict, as builders get one) that records which keys were
    read; whatever reads it whole (a copy, ``dict(...)``, ``**``, items) reads them all."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)

    def _whole(self) -> None:
        self.read.update(super().keys())

    def __iter__(self) -> Iterator[str]:
        self._whole()
        return super().__iter__()

    def keys(self) -> Any:
        self._whole()
        return super().keys()

    def items(self) -> Any:
        self._whole()
        return super().items()

    def values(self) -> Any:
        self._whole()
        return super().values()

    def copy(self) -> dict[str, Any]:
        self._whole()
        return dict(super().items())


def keys_read(
    config: Mapping[str, Any], input_shape: Sequence[int], num_classes: int
) -> frozenset[str]:
    """The keys of ``config`` that training reads: the architecture's name, the batch
    size, the optimiser's keys and whatever the architecture's builder reads (built on
    torch's "meta" device, as ``validate_config`` does, so nothing is allocated).

    A key of the configuration that is not among them changes nothing (a typo such as
    ``hiden``, or ``momentum`` with Adam).

    Raises:
        UserInputError: as ``validate_config``, for a configuration training refuses.
    """
    seen = _ReadRecorder(config)
    cfg = training_config(config)
    seen.read.update({"architecture", "batch_size"})
    optimizer_settings(seen)
    with torch.device("meta"):
        build_architecture(cfg.architecture, seen, input_shape, num_classes)
    return frozenset(seen.read)


def train_partition(
    config: Config,
    state: StateBytes | None,
    x: ArrayLike,
    y: ArrayLike,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    epoch: int,
    seed: int,
    device: torch.device | str | None = None,
    evaluate_on: Sequence[tuple[ArrayLike, ArrayLike]] = (),
) -> tuple[bytes, dict[str, float | int]]:
    """Train the model one pass over one partition and return its new state.

    ``state`` None starts a new model initialised from ``seed``; otherwise training
    continues from the state (weights, optimiser buffers, RNG). The rows are visited in
    mini-batches of ``config["batch_size"]`` in an order drawn from ``(seed, epoch)``, so
    rerunning a pass from the same state gives the same result (bit for bit on a CPU).

    Args:
        x: float32 features ``[n, *input_shape]`` (numpy or torch; any layout with
            ``prod(input_shape)`` values per row is reshaped).
        y: int64 class indices ``[n]`` in ``[0, num_classes)``.
        epoch: the 1-based epoch this pass belongs to; recorded in the state.
        seed: the trial's seed; keep it the same for every pass of a trial.
        evaluate_on: validation parts ``(x, y)`` (shapes as above) to evaluate the
            trained model on after the pass, from the session in memory: the sums
            :func:`evaluate_partition` of the returned state gives on each part, added
            up, without reading the state back once per part.

    Returns:
        ``(state_bytes, metrics)`` with metrics ``loss_sum`` (summed cross-entropy),
        ``correct`` (training-mode correct predictions), ``samples`` (rows) and
        ``seconds`` (wall time of the whole call: load, pass, save and evaluation);
        with ``evaluate_on``, also ``valid_loss_sum``, ``valid_correct`` and
        ``valid_samples``, summed over the parts.

    Raises:
        UserInputError: a bad configuration, or data that does not fit
            ``input_shape``/``num_classes``.
        InvalidStateError: ``state`` is unreadable or does not fit ``config``.
        ValueError: ``epoch`` < 1.
    """
    started = time.perf_counter()
    session = TrainingSession.open(
        config, state, input_shape=input_shape, num_classes=num_classes, seed=seed, device=device
    )
    metrics = session.train_pass(x, y, epoch=epoch)
    new_state = session.to_bytes()
    if evaluate_on:
        sums = {"valid_loss_sum": 0.0, "valid_correct": 0, "valid_samples": 0}
        for vx, vy in evaluate_on:
            part = session.evaluate(vx, vy)
            sums["valid_loss_sum"] += part["loss_sum"]
            sums["valid_correct"] += part["correct"]
            sums["valid_samples"] += part["samples"]
        metrics.update(sums)
    metrics["seconds"] = time.perf_counter() - started
    return new_state, metrics


def evaluate_partition(
    config: Config,
    state: StateBytes,
    x: ArrayLike,
    y: ArrayLike,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    batch_size: int = EVAL_BATCH_SIZE,
    device: torch.device | str | None = None,
) -> dict[str, float | int]:
    """Summed loss and correct predictions of the model in ``state`` over ``(x, y)``.

    Runs in eval mode (dropout off, BatchNorm running statistics) without gradients.

    Returns:
        ``{"loss_sum": float, "correct": int, "samples": int}``.

    Raises:
        UserInputError, InvalidStateError: as :func:`train_partition`.
    """
    return _session(config, state, input_shape, num_classes, device).evaluate(
        x, y, batch_size=batch_size
    )


def predict_proba(
    config: Config,
    state: StateBytes,
    x: ArrayLike,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    batch_size: int = EVAL_BATCH_SIZE,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Class probabilities ``[n, num_classes]`` (float32, rows sum to 1) for ``x``.

    ``x`` must be normalised as the training data was (``data.reader.normalize``): raw
    rows give wrong answers without an error. ``ExportedModel.predict_proba`` takes raw
    rows.

    Raises:
        UserInputError, InvalidStateError: as :func:`train_partition`.
    """
    session = _session(config, state, input_shape, num_classes, device)
    logits = session.logits(x, batch_size=batch_size)
    return torch.softmax(logits, dim=1).numpy()


def predict(
    config: Config,
    state: StateBytes,
    x: ArrayLike,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    batch_size: int = EVAL_BATCH_SIZE,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Predicted class indices ``[n]`` (int64) for ``x``, normalised as for
    :func:`predict_proba` (``ExportedModel.predict`` takes raw rows and gives labels).

    Map them back to labels with the dataset's ``class_values``.

    Raises:
        UserInputError, InvalidStateError: as :func:`train_partition`.
    """
    session = _session(config, state, input_shape, num_classes, device)
    logits = session.logits(x, batch_size=batch_size)
    return logits.argmax(dim=1).numpy().astype(np.int64, copy=False)


def _session(
    config: Config,
    state: StateBytes,
    input_shape: Sequence[int],
    num_classes: int,
    device: torch.device | str | None,
) -> TrainingSession:
    if state is None:
        raise ValueError("Evaluation and prediction need a trained state, not None.")
    # The seed only matters for training passes, which these callers never make.
    return TrainingSession.open(
        config, state, input_shape=input_shape, num_classes=num_classes, seed=0, device=device
    )
