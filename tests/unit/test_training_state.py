"""Model state to bytes and back: exact, safe (no pickle; weights_only for the old
format), compact, device-free."""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch

from automl_core.state_format import state_file_name
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
    # The format is deterministic, so bytes -> state -> bytes reproduces the bytes.
    assert to_bytes(state) == data


def test_tensors_are_named_by_their_place_in_the_state() -> None:
    # Any safetensors reader finds the weights under "model/" (no automl code needed).
    tensors = safetensors.torch.load(_trained_state())
    assert "rng" in tensors and "model/1.weight" in tensors
    assert {k.split("/")[0] for k in tensors} == {"model", "optimizer", "rng"}
    assert "optimizer/state/0/exp_avg" in tensors


def _torch_archive(state: TrainingState) -> bytes:
    """The state as the previous version wrote it (format 1: a torch.save archive)."""
    buffer = io.BytesIO()
    payload = {
        "format": 1,
        "architecture": state.architecture,
        "epoch": state.epoch,
        "seed_counter": state.seed_counter,
        "rng": state.rng,
        "model": state.model,
        "optimizer": state.optimizer,
    }
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_a_state_file_is_named_by_its_format() -> None:
    data = _trained_state()
    assert state_file_name("model", data) == "model.safetensors"
    assert state_file_name("model", _torch_archive(from_bytes(data))) == "model.pt"


def test_checkpoints_of_the_previous_format_still_load() -> None:
    state = from_bytes(_trained_state())
    old = from_bytes(_torch_archive(state))
    assert (old.architecture, old.epoch, old.seed_counter) == ("mlp", 2, 2)
    _assert_nested_equal(state.model, old.model)
    _assert_nested_equal(state.optimizer, old.optimizer)
    # A session continues from either the same way.
    x = np.ones((4, 6), dtype=np.float32)
    y = np.array([0, 1, 2, 0])
    results = []
    for data in (to_bytes(state), _torch_archive(state)):
        session = TrainingSession.open(CONFIG, data, input_shape=(6,), num_classes=3, seed=5)
        session.train_pass(x, y, epoch=3)
        results.append(from_bytes(session.to_bytes()))
    _assert_nested_equal(results[0].model, results[1].model)


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


def _with_tree(tree: Any, tensors: dict[str, torch.Tensor] | None = None) -> bytes:
    """A safetensors file whose automl metadata is ``tree`` (JSON-encoded)."""
    tensors = {"rng": torch.zeros(3, dtype=torch.uint8)} if tensors is None else tensors
    return safetensors.torch.save(tensors, metadata={"automl_state": json.dumps(tree)})


_GOOD_TREE = {
    "format": 2,
    "architecture": "mlp",
    "epoch": 1,
    "seed_counter": 1,
    "rng": {"tensor": "rng"},
    "model": {"dict": []},
    "optimizer": None,
}


@pytest.mark.parametrize(
    "change",
    [
        {"format": 99},
        {"rng": {"tensor": "missing"}},  # a name with no tensor
        {"model": {"object": "os.system"}},  # a node this format does not have
        {"model": {"dict": [[["a"], 1]]}},  # a key that is not str or int
        {"model": [1, 2]},  # not a dict
        {"optimizer": 3},
        {"rng": 5},
    ],
)
def test_malformed_safetensors_states_are_rejected(change: dict[str, Any]) -> None:
    assert from_bytes(_with_tree(_GOOD_TREE)).epoch == 1
    with pytest.raises(InvalidStateError):
        from_bytes(_with_tree({**_GOOD_TREE, **change}))


def test_safetensors_without_a_state_are_rejected() -> None:
    with pytest.raises(InvalidStateError):
        from_bytes(safetensors.torch.save({"w": torch.ones(2)}))  # no metadata
    with pytest.raises(InvalidStateError):
        from_bytes(_with_tree([1, 2]))  # metadata that is not an object


def test_only_plain_values_are_saved() -> None:
    state = _state_with_model({"w": torch.ones(2)})
    state.optimizer = {"state": {}, "param_groups": [{"lr": 0.1, "hook": object()}]}
    with pytest.raises(TypeError, match="cannot hold a object"):
        to_bytes(state)


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
