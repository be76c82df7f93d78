"""Device choice: the GPU when there is one, AUTOML_DEVICE to override."""

from __future__ import annotations

import pytest
import torch

from automl_core.errors import UserInputError
from automl_core.training import default_device, resolve_device


def test_default_is_cuda_exactly_when_a_gpu_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTOML_DEVICE", raising=False)
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_environment_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setenv("AUTOML_DEVICE", "tpu-please")
    with pytest.raises(UserInputError, match="'AUTOML_DEVICE' is 'tpu-please'"):
        default_device()


def test_explicit_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(UserInputError, match="not a torch device"):
        resolve_device("gpu0")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(UserInputError, match="sees no GPU; use 'cpu'"):
            resolve_device("cuda")
