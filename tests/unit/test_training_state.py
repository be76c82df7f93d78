"""Model state to bytes and back: exact, safe (weights_only), compact, device-free."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch

from automl_core.training import (
    InvalidStateError,
    TrainingSession,
    TrainingState,
    default_device,
    from_bytes,
    to_bytes,
)

CONFIG = {"architecture": "mlp", "hidden": 16, "depth": 2, "optimizer": "adam", "batch_size": 8}


def _trained_state(config: dict[str, Any] = CONFIG, device: Any = None) -> bytes:
    """State bytes after two passes, so the optimiser holds moments and step counts."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    session = TrainingSession.open(
        config, None, input_shape=(6,), num_classes=3, seed=5, device=device
    )
    session.train_pass(x, y, epoch=1)
    session.train_pass(x, y, epoch=2)
    return session.to_bytes()


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors(v)]
    return []


def _assert_nested_equal(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_nested_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _assert_nested_equal(u, v)
    else:
        assert a == b


def test_round_trip_is_exact() -> None:
    data = _trained_state()
    state = from_bytes(data)
    assert state.architecture == "mlp" and state.epoch == 2 and state.seed_counter == 2
    assert state.optimizer is not None and len(state.optimizer["state"]) == 6
    assert state.rng.dtype == torch.uint8
    again = from_bytes(to_bytes(state))
    _assert_nested_equal(state.model, again.model)
    _assert_nested_equal(state.optimizer, again.optimizer)
    assert torch.equal(state.rng, again.rng)
    # torch.save is deterministic, so bytes -> state -> bytes reproduces the bytes.
    assert to_bytes(state) == data


def test_accepts_memoryview_from_a_database_driver() -> None:
    data = _trained_state()
    assert from_bytes(memoryview(data)).epoch == 2


_CALLS: list[str] = []


def _record(arg: str) -> str:
    _CALLS.append(arg)
    return arg


class _Evil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_record, ("code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_arbitrary_objects_are_never_unpickled() -> None:
    buffer = io.BytesIO()
    torch.save({"format": 1, "model": {}, "payload": _Evil()}, buffer)
    with pytest.raises(InvalidStateError, match="not a readable training state"):
        from_bytes(buffer.getvalue())
    assert _CALLS == []
    # Plain pickle bytes are refused too.
    with pytest.raises(InvalidStateError):
        from_bytes(pickle.dumps(_Evil()))
    assert _CALLS == []


@pytest.mark.parametrize("payload", [{"format": 99}, {"format": 1, "model": {}}, [1, 2]])
def test_foreign_payloads_are_rejected(payload: Any) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with pytest.raises(InvalidStateError):
        from_bytes(buffer.getvalue())


@pytest.mark.parametrize("data", [b"", b"not a state", b"PK\x03\x04garbage"])
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidStateError):
        from_bytes(data)


def test_truncated_state_is_rejected() -> None:
    data = _trained_state()
    with pytest.raises(InvalidStateError):
        from_bytes(data[: len(data) // 2])


def test_size_is_the_tensors_and_little_more() -> None:
    config = {**CONFIG, "hidden": 128}
    state = from_bytes(_trained_state(config))
    tensor_bytes = sum(t.numel() * t.element_size() for t in _tensors(state.__dict__))
    size = len(to_bytes(state))
    assert tensor_bytes < size < tensor_bytes * 1.02 + 16_384


def _state_with_model(model: dict[str, torch.Tensor]) -> TrainingState:
    return TrainingState("mlp", OrderedDict(model), None, 1, torch.get_rng_state(), 0)


def test_views_are_saved_without_their_base_storage() -> None:
    base = torch.arange(1_000_000, dtype=torch.float32)
    data = to_bytes(_state_with_model({"w": base[:10]}))
    assert len(data) < 20_000
    assert torch.equal(from_bytes(data).model["w"], base[:10])


def test_shared_tensors_are_saved_once() -> None:
    shared = torch.randn(100_000)
    once = len(to_bytes(_state_with_model({"a": shared})))
    twice = len(to_bytes(_state_with_model({"a": shared, "b": shared})))
    assert twice < once + 2_000
    loaded = from_bytes(to_bytes(_state_with_model({"a": shared, "b": shared})))
    assert torch.equal(loaded.model["a"], loaded.model["b"])


def test_state_from_the_training_device_loads_on_the_cpu() -> None:
    # On a GPU host this trains on the GPU: the bytes must still hold only CPU tensors.
    state = from_bytes(_trained_state(device=default_device()))
    assert {t.device.type for t in _tensors(state.__dict__)} == {"cpu"}


def test_every_device_produces_the_same_format() -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        model = OrderedDict(w=torch.ones(3, device=device))
        loaded = from_bytes(to_bytes(_state_with_model(model)))
        assert loaded.model["w"].device.type == "cpu"
        assert torch.equal(loaded.model["w"], torch.ones(3))
