"""A model's training state as bytes, and back.

The bytes are what hops between workers and what a checkpoint stores (bytea or an
artifact), so they must be safe to load and device-independent:

- Loading uses ``torch.load(..., weights_only=True)`` only. The payload is a plain dict
  of tensors, ints, floats, strings, bools, None, lists, tuples and dicts (torch's own
  model and optimiser ``state_dict`` formats), so no arbitrary object is ever
  unpickled and a tampered checkpoint cannot run code.
- Every tensor is moved to the CPU before saving and loaded with
  ``map_location="cpu"``: a state made on a GPU loads on a CPU-only host, and the
  engine moves it to whatever device it trains on.
- Each tensor is saved once with its own storage (views of larger storages are
  compacted first), so the size is the model plus optimiser buffers and no more.

Payload (format 1)::

    {"format": 1, "architecture": str, "epoch": int, "seed_counter": int,
     "rng": uint8 tensor (torch CPU generator state),
     "model": model.state_dict(), "optimizer": optimizer.state_dict() or None}
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FORMAT_VERSION", "InvalidStateError", "TrainingState", "from_bytes", "to_bytes"]

FORMAT_VERSION = 1


class InvalidStateError(ValueError):
    """The bytes are not a training state this version can read (corrupt or foreign)."""


@dataclass
class TrainingState:
    """Everything needed to continue training a model exactly where it stopped.

    ``epoch`` is the (1-based) epoch of the last pass trained into the weights;
    ``seed_counter`` counts the training passes made so far (it derives per-pass seeds,
    see ``engine.py``); ``rng`` is torch's CPU generator state after the last pass.
    """

    architecture: str
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    epoch: int
    rng: torch.Tensor
    seed_counter: int


def _to_cpu(obj: Any, memo: dict[int, torch.Tensor] | None = None) -> Any:
    """``obj`` with every tensor detached, on the CPU and owning a compact storage.

    ``memo`` maps ``id(tensor)`` to its copy, so a tensor reached twice (tied weights)
    is still saved once after a GPU -> CPU copy.
    """
    memo = {} if memo is None else memo
    if isinstance(obj, torch.Tensor):
        if id(obj) not in memo:
            t = obj.detach().to("cpu")
            # A view saves its whole base storage; copy it out so only its elements are saved.
            if t.untyped_storage().nbytes() != t.numel() * t.element_size():
                t = t.clone()
            memo[id(obj)] = t
        return memo[id(obj)]
    if isinstance(obj, dict):
        out = type(obj)((k, _to_cpu(v, memo)) for k, v in obj.items())
        # state_dict() carries per-module versions here; load_state_dict reads them.
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata  # type: ignore[attr-defined]
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v, memo) for v in obj)
    return obj


def to_bytes(state: TrainingState) -> bytes:
    """Serialise ``state``; the result loads with :func:`from_bytes` on any device."""
    memo: dict[int, torch.Tensor] = {}
    payload = {
        "format": FORMAT_VERSION,
        "architecture": state.architecture,
        "epoch": int(state.epoch),
        "seed_counter": int(state.seed_counter),
        "rng": _to_cpu(state.rng),
        "model": _to_cpu(state.model, memo),
        "optimizer": _to_cpu(state.optimizer, memo),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes | bytearray | memoryview) -> TrainingState:
    """Deserialise bytes made by :func:`to_bytes`; every tensor lands on the CPU.

    Raises:
        InvalidStateError: the bytes are not a readable training state (truncated,
            corrupt, made by an unknown format version, or holding objects that
            ``weights_only`` loading refuses).
    """
    try:
        payload = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError) as exc:
        raise InvalidStateError(f"These bytes are not a readable training state: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise InvalidStateError(
            f"These bytes are not a training state of format {FORMAT_VERSION} (found {found!r})."
        )
    try:
        if not isinstance(payload["model"], dict) or not isinstance(payload["rng"], torch.Tensor):
            raise TypeError("'model' must be a dict and 'rng' a tensor")
        return TrainingState(
            architecture=str(payload["architecture"]),
            model=payload["model"],
            optimizer=payload["optimizer"],
            epoch=int(payload["epoch"]),
            rng=payload["rng"],
            seed_counter=int(payload["seed_counter"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidStateError(f"The training state is malformed: {exc!r}") from exc
