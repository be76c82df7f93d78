"""A model, its optimiser and its RNG in memory: the torch side of a training pass.

``engine.py`` wraps this in the bytes-in, bytes-out functions the hopper calls; the
session is the part that holds live torch objects.

Implementation notes:

- Reproducibility. Every random draw is derived from the caller's ``seed``:
  initial weights from ``mix_seed(seed, INIT)``; the shuffle of a pass from
  ``mix_seed(seed, SHUFFLE, epoch)`` (so a rerun of a pass is identical); dropout on
  the CPU from torch's CPU generator, whose state travels inside the model state;
  dropout on a GPU from ``mix_seed(seed, CUDA, seed_counter)``, where ``seed_counter``
  (also in the state) counts passes, because a CUDA generator's state is
  device-specific and must not be carried to a CPU. Give each trial its own seed.
- Isolation. The global RNG is forked around every use (``torch.random.fork_rng``),
  so training a model never disturbs the caller's RNG nor another model's draws.
- Hopping loses nothing: weights, optimiser buffers (momentum, Adam moments, step
  counts), BatchNorm statistics and the RNG all travel in the bytes; on the CPU,
  training A then B in one session equals training A, saving, loading and training B,
  bit for bit (tests/unit/test_training_engine.py checks it).
- Speed. The partition is moved to the device once per call; each pass draws one
  permutation and indexes the resident tensors with slices of it: no DataLoader, no
  per-row Python. Loss and accuracy are summed on the device and read once at the end,
  so a GPU never waits on the host mid-pass. Thread counts are the caller's business.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from automl_core.errors import UserInputError
from automl_core.training.config import DEFAULT_BATCH_SIZE, TrainingConfig, training_config
from automl_core.training.device import resolve_device
from automl_core.training.optimizers import build_optimizer
from automl_core.training.registry import build_architecture, check_input_shape
from automl_core.training.state import InvalidStateError, TrainingState, from_bytes, to_bytes

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EVAL_BATCH_SIZE",
    "ArrayLike",
    "TrainingSession",
    "mix_seed",
]

EVAL_BATCH_SIZE = 1024

# Stream tags for deriving independent seeds from one trial seed.
_INIT, _SHUFFLE, _CUDA = 0, 1, 2

ArrayLike = np.ndarray | torch.Tensor


def mix_seed(*parts: int) -> int:
    """A 63-bit seed derived from integer ``parts`` (numpy's SeedSequence hashing)."""
    words = [int(p) % 2**64 for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]) >> 1


def _rng_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _build(config: TrainingConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return build_architecture(config.architecture, config.params, input_shape, num_classes)


def _load_model(
    config: TrainingConfig,
    state: TrainingState,
    input_shape: tuple[int, ...],
    num_classes: int,
) -> nn.Module:
    """The model of ``config`` holding ``state``'s weights (on the CPU)."""
    name = config.architecture
    if state.architecture != name:
        raise InvalidStateError(
            f"The state was trained with architecture {state.architecture!r}, but the "
            f"configuration asks for {name!r}; a trial's configuration must not change."
        )
    # Building on "meta" skips random initialisation that the loaded weights replace.
    with torch.device("meta"):
        model = _build(config, input_shape, num_classes)
    try:
        model.load_state_dict(state.model, assign=True)
        if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
            # A (user) module with non-persistent buffers: build it for real instead.
            with torch.random.fork_rng(devices=[]):
                model = _build(config, input_shape, num_classes)
            model.load_state_dict(state.model)
    except RuntimeError as exc:
        raise InvalidStateError(
            f"The state does not fit the model that the configuration describes: {exc}"
        ) from exc
    return model


def _as_tensor(a: ArrayLike) -> torch.Tensor:
    """``a`` as a tensor sharing its memory where possible.

    Partitions decoded from bytea with ``np.frombuffer`` are read-only; torch warns about
    those, but the engine only ever reads its inputs, so sharing is safe and a copy of
    the partition would be wasted.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(a)


def _inputs(x: ArrayLike, input_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``x`` as float32 ``[n, *input_shape]`` on ``device``.

    Raises:
        UserInputError: the rows do not hold ``prod(input_shape)`` features.
    """
    xt = _as_tensor(x)
    if xt.ndim < 2 or math.prod(xt.shape[1:]) != math.prod(input_shape):
        raise UserInputError(
            f"The data has shape {list(xt.shape)}, but rows of shape {list(input_shape)} "
            f"were expected ([n, {', '.join(map(str, input_shape))}]); check the dataset's "
            "feature_shape."
        )
    xt = xt.reshape(xt.shape[0], *input_shape)
    return xt.to(device=device, dtype=torch.float32, non_blocking=True).contiguous()


def _labels(y: ArrayLike, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """``y`` as int64 ``[n]`` on ``device``, every label in ``[0, num_classes)``.

    Checked on the host: an out-of-range label would otherwise be a CUDA device assert.

    Raises:
        UserInputError: wrong length, not integers, or out of range.
    """
    yt = _as_tensor(y)
    if yt.ndim != 1 or yt.shape[0] != n:
        raise UserInputError(
            f"The labels have shape {list(yt.shape)}, but {n} class indices were expected."
        )
    if yt.is_floating_point() or yt.is_complex() or yt.dtype == torch.bool:
        raise UserInputError(
            f"The labels have dtype {yt.dtype}, but integer class indices were expected."
        )
    if n and (int(yt.min()) < 0 or int(yt.max()) >= num_classes):
        raise UserInputError(
            f"The labels range over [{int(yt.min())}, {int(yt.max())}], but class indices "
            f"must lie in [0, {num_classes - 1}] for {num_classes} classes."
        )
    return yt.to(device=device, dtype=torch.int64, non_blocking=True)


class TrainingSession:
    """A model, its optimiser and its RNG held in memory across training passes.

    ``train_partition`` is ``open`` + one ``train_pass`` + ``to_bytes``. A session
    also lets a caller train several passes without serialising in between, with the
    same result as going through bytes after every pass.
    """

    def __init__(
        self,
        config: TrainingConfig,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        rng: torch.Tensor,
        seed: int,
        seed_counter: int,
        epoch: int,
        device: torch.device,
    ) -> None:
        self.config = config
        self.model = model
        self.optimizer = optimizer
        self.architecture = config.architecture
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.rng = rng
        self.seed = seed
        self.seed_counter = seed_counter
        self.epoch = epoch
        self.device = device
        self.batch_size = config.batch_size

    @classmethod
    def open(
        cls,
        config: TrainingConfig | Mapping[str, Any],
        state: bytes | bytearray | memoryview | None,
        *,
        input_shape: Sequence[int],
        num_classes: int,
        seed: int,
        device: torch.device | str | None = None,
    ) -> TrainingSession:
        """Continue from ``state``, or start a new model initialised from ``seed``.

        A dict ``config`` is validated here (a bad optimiser fails before anything is
        built); a ``TrainingConfig`` was validated already.

        Raises:
            UserInputError: a bad configuration (see ``validate_config``).
            InvalidStateError: ``state`` is unreadable or does not fit ``config``.
        """
        dev = resolve_device(device)
        shape = check_input_shape(input_shape)
        config = training_config(config)
        if state is None:
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(mix_seed(seed, _INIT))
                model = _build(config, shape, num_classes)
                rng = torch.get_rng_state()
            loaded: TrainingState | None = None
        else:
            loaded = from_bytes(state)
            model = _load_model(config, loaded, shape, num_classes)
            rng = loaded.rng
        model.to(dev)
        optimizer = build_optimizer(config.optimizer, model.parameters())
        if loaded is not None and loaded.optimizer is not None:
            try:
                optimizer.load_state_dict(loaded.optimizer)
            except (ValueError, KeyError, RuntimeError) as exc:
                raise InvalidStateError(
                    f"The optimiser state does not fit the configuration's optimiser: {exc}"
                ) from exc
        return cls(
            config,
            model,
            optimizer,
            input_shape=shape,
            num_classes=num_classes,
            rng=rng,
            seed=seed,
            seed_counter=0 if loaded is None else loaded.seed_counter,
            epoch=0 if loaded is None else loaded.epoch,
            device=dev,
        )

    def train_pass(self, x: ArrayLike, y: ArrayLike, *, epoch: int) -> dict[str, float | int]:
        """One pass over ``(x, y)`` in shuffled mini-batches; the session's epoch
        becomes ``epoch``.

        Returns:
            ``{"loss_sum", "correct", "samples", "seconds"}``: summed cross-entropy and
            correct predictions (training mode) over the rows, the row count, and the
            wall seconds of the pass.

        Raises:
            UserInputError: ``x``/``y`` do not match the model's input shape or classes.
            ValueError: ``epoch`` < 1.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"The epoch is {epoch!r}, but must be an int >= 1 (1-based).")
        started = time.perf_counter()
        xt, yt, n = self._data(x, y)
        shuffle = torch.Generator().manual_seed(mix_seed(self.seed, _SHUFFLE, epoch))
        perm = torch.randperm(n, generator=shuffle).to(self.device, non_blocking=True)
        model, optimizer, bs = self.model, self.optimizer, self.batch_size
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        model.train()
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            torch.set_rng_state(self.rng)
            if self.device.type == "cuda":
                torch.cuda.manual_seed(mix_seed(self.seed, _CUDA, self.seed_counter))
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                xb, yb = xt.index_select(0, idx), yt.index_select(0, idx)
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    loss_sum += loss.detach() * yb.shape[0]
                    correct += (logits.argmax(dim=1) == yb).sum()
            self.rng = torch.get_rng_state()
        self.seed_counter += 1
        self.epoch = epoch
        return {
            "loss_sum": loss_sum.item(),
            "correct": int(correct.item()),
            "samples": n,
            "seconds": time.perf_counter() - started,
        }

    def evaluate(
        self, x: ArrayLike, y: ArrayLike, *, batch_size: int = EVAL_BATCH_SIZE
    ) -> dict[str, float | int]:
        """Summed loss and correct predictions over ``(x, y)`` in eval mode.

        Returns:
            ``{"loss_sum", "correct", "samples"}``.
        """
        xt, yt, n = self._data(x, y)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for logits, start in self._logits(xt, batch_size):
            yb = yt[start : start + logits.shape[0]]
            loss_sum += F.cross_entropy(logits, yb, reduction="sum")
            correct += (logits.argmax(dim=1) == yb).sum()
        return {"loss_sum": loss_sum.item(), "correct": int(correct.item()), "samples": n}

    def logits(self, x: ArrayLike, *, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
        """The model's logits for ``x`` in eval mode, ``[n, num_classes]`` on the CPU."""
        xt = _inputs(x, self.input_shape, self.device)
        parts = [logits for logits, _ in self._logits(xt, batch_size)]
        if not parts:
            return torch.empty((0, self.num_classes))
        return torch.cat(parts).cpu()

    def to_bytes(self) -> bytes:
        """The session's state (weights, optimiser, epoch, RNG) as bytes."""
        return to_bytes(
            TrainingState(
                architecture=self.architecture,
                model=self.model.state_dict(),
                optimizer=self.optimizer.state_dict(),
                epoch=self.epoch,
                rng=self.rng,
                seed_counter=self.seed_counter,
            )
        )

    # -- helpers ------------------------------------------------------------------

    def _data(self, x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, int]:
        xt = _inputs(x, self.input_shape, self.device)
        n = xt.shape[0]
        return xt, _labels(y, n, self.num_classes, self.device), n

    def _logits(self, xt: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, int]]:
        if batch_size < 1:
            raise ValueError(f"The batch size is {batch_size}, but must be >= 1.")
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, xt.shape[0], batch_size):
                yield self.model(xt[start : start + batch_size]), start
