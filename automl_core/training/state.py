"""A model's training state as bytes, and back.

The bytes are what hops between workers and what a checkpoint stores (bytea or an
artifact), so they must be safe to load, device-independent and cheap to make and read:

- Format 2 (written): a safetensors file (Hugging Face's ``safetensors``: a JSON header
  and the raw tensor data, no pickle). Tensors are named by where they sit in the state
  (``model/<parameter>``, ``optimizer/state/<i>/<buffer>``, ``rng``); everything else
  (the architecture, epoch and counters, the optimiser's hyperparameters, the nesting of
  dicts, lists and tuples) is JSON in the header's metadata (``automl_state``), with
  tensors referred to by name. Reading it runs no code and builds only dicts, lists,
  tuples, numbers, strings and tensors. It is why the format changed: reading a small
  model's state took ~1.4 ms with ``torch.load`` and takes ~0.2 ms, on every hop.
- Format 1 (read only): a ``torch.save`` archive of the same payload, as checkpoints
  were written before; loaded with ``torch.load(..., weights_only=True)`` only.
- Every tensor is moved to the CPU before saving, and loads on the CPU: a state made on
  a GPU loads on a CPU-only host, and the engine moves it to whatever device it trains on.
- Each tensor is saved once with its own storage (views of larger storages are
  compacted first; a tensor reached twice, as tied weights are, is stored once and
  comes back as one tensor), so the size is the model plus optimiser buffers and a
  header.

Payload (both formats)::

    {"format": 1 | 2, "architecture": str, "epoch": int, "seed_counter": int,
     "rng": uint8 tensor (torch CPU generator state),
     "model": model.state_dict(), "optimizer": optimizer.state_dict() or None}
"""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from automl_core.state_format import METADATA_KEY, is_torch_archive

__all__ = ["FORMAT_VERSION", "InvalidStateError", "TrainingState", "from_bytes", "to_bytes"]

FORMAT_VERSION = 2
_TORCH_ARCHIVE_FORMAT = 1
# JSON nodes that stand for what JSON has not: a tensor (by name), a dict (keys may be
# ints, as the optimiser's state is keyed by parameter index) and a tuple.
_TENSOR, _DICT, _TUPLE, _VERSIONS = "tensor", "dict", "tuple", "versions"


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


class _Flattener:
    """A payload as named CPU tensors and a JSON tree that refers to them by name."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self._names: dict[int, str] = {}  # id(tensor) -> its name: tied weights stored once
        self._storages: set[int] = set()

    def encode(self, obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            return {_TENSOR: self._tensor(obj, path)}
        if isinstance(obj, dict):
            node: dict[str, Any] = {
                _DICT: [[_json_key(k, path), self.encode(v, f"{path}/{k}")] for k, v in obj.items()]
            }
            # state_dict() carries per-module versions here; load_state_dict reads them.
            versions = getattr(obj, "_metadata", None)
            if versions is not None:
                node[_VERSIONS] = self.encode(dict(versions), f"{path}/_metadata")
            return node
        if isinstance(obj, tuple):
            return {_TUPLE: [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        raise TypeError(f"A training state cannot hold a {type(obj).__name__} (at {path}).")

    def _tensor(self, tensor: torch.Tensor, path: str) -> str:
        name = self._names.get(id(tensor))
        if name is not None:
            return name
        t = tensor.detach().to("cpu")
        storage = t.untyped_storage()
        # A view would save its whole base storage, and safetensors refuses two tensors
        # on one storage: copy those out, so only the tensor's own elements are saved.
        if t.numel() and (
            not t.is_contiguous()
            or storage.nbytes() != t.numel() * t.element_size()
            or storage.data_ptr() in self._storages
        ):
            t = t.contiguous().clone()
        self._storages.add(t.untyped_storage().data_ptr())
        name, n = path, 1
        while name in self.tensors:  # two keys that print alike, e.g. 1 and "1"
            n += 1
            name = f"{path}#{n}"
        self.tensors[name] = t
        self._names[id(tensor)] = name
        return name


def _json_key(key: Any, path: str) -> str | int:
    if isinstance(key, str | int):
        return key
    raise TypeError(f"A training state's dict keys must be str or int, not {key!r} (at {path}).")


def _unflatten(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The payload a JSON tree written by :class:`_Flattener` describes."""
    if isinstance(node, list):
        return [_unflatten(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node  # str, int, float, bool or None
    kind = set(node)
    if kind == {_TENSOR}:
        return tensors[node[_TENSOR]]
    if kind == {_TUPLE}:
        return tuple(_unflatten(v, tensors) for v in node[_TUPLE])
    if kind in ({_DICT}, {_DICT, _VERSIONS}):
        items = [(_json_key(k, "the state"), _unflatten(v, tensors)) for k, v in node[_DICT]]
        if _VERSIONS not in node:
            return dict(items)
        out = OrderedDict(items)
        out._metadata = _unflatten(node[_VERSIONS], tensors)  # type: ignore[attr-defined]
        return out
    raise ValueError(f"unknown node with keys {sorted(kind)}")


def to_bytes(state: TrainingState) -> bytes:
    """Serialise ``state`` (format 2); the result loads with :func:`from_bytes` on any device.

    Raises:
        TypeError: the state holds something other than tensors, numbers, strings,
            None, and dicts (str or int keys), lists and tuples of those.
    """
    flat = _Flattener()
    tree = {
        "format": FORMAT_VERSION,
        "architecture": state.architecture,
        "epoch": int(state.epoch),
        "seed_counter": int(state.seed_counter),
        "rng": flat.encode(state.rng, "rng"),
        "model": flat.encode(state.model, "model"),
        "optimizer": flat.encode(state.optimizer, "optimizer"),
    }
    metadata = {METADATA_KEY: json.dumps(tree, separators=(",", ":"))}
    return safetensors.torch.save(flat.tensors, metadata=metadata)


def from_bytes(data: bytes | bytearray | memoryview) -> TrainingState:
    """Deserialise bytes made by :func:`to_bytes` (format 2) or by an earlier version's
    ``torch.save`` (format 1); every tensor lands on the CPU.

    Raises:
        InvalidStateError: the bytes are not a readable training state (truncated,
            corrupt, made by an unknown format version, or, in format 1, holding
            objects that ``weights_only`` loading refuses).
    """
    raw = bytes(data)
    archive = is_torch_archive(raw)
    payload = _read_torch_archive(raw) if archive else _read_safetensors(raw)
    expected = _TORCH_ARCHIVE_FORMAT if archive else FORMAT_VERSION
    if not isinstance(payload, dict) or payload.get("format") != expected:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise InvalidStateError(
            f"These bytes are not a training state of format {expected} (found {found!r})."
        )
    try:
        if not isinstance(payload["model"], dict) or not isinstance(payload["rng"], torch.Tensor):
            raise TypeError("'model' must be a dict and 'rng' a tensor")
        optimizer = payload["optimizer"]
        if optimizer is not None and not isinstance(optimizer, dict):
            raise TypeError("'optimizer' must be a dict or None")
        return TrainingState(
            architecture=str(payload["architecture"]),
            model=payload["model"],
            optimizer=optimizer,
            epoch=int(payload["epoch"]),
            rng=payload["rng"],
            seed_counter=int(payload["seed_counter"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidStateError(f"The training state is malformed: {exc!r}") from exc


def _read_safetensors(raw: bytes) -> Any:
    try:
        tensors = safetensors.torch.load(raw)
        # The file's layout (safetensors' spec): an 8-byte little-endian header size,
        # then the JSON header; load() has checked both.
        size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + size])
        root = json.loads(header["__metadata__"][METADATA_KEY])
        if not isinstance(root, dict):
            raise TypeError(f"the state's metadata is a {type(root).__name__}, not an object")
        return {key: _unflatten(value, tensors) for key, value in root.items()}
    except (SafetensorError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidStateError(f"These bytes are not a readable training state: {exc}") from exc


def _read_torch_archive(raw: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError) as exc:
        raise InvalidStateError(f"These bytes are not a readable training state: {exc}") from exc
