"""Which torch device a worker trains on.

A worker uses the GPU when the process sees one (on GPU hosts Dask starts one worker per
GPU and ``CUDA_VISIBLE_DEVICES`` gives each its own, so "cuda" is that GPU), otherwise
the CPU. ``AUTOML_DEVICE`` overrides the choice, e.g. ``AUTOML_DEVICE=cpu`` to keep a
GPU host's workers off the GPU.
"""

from __future__ import annotations

import os

import torch

from automl_core.errors import UserInputError

__all__ = ["default_device", "resolve_device"]


def default_device() -> torch.device:
    """``AUTOML_DEVICE`` if set, else "cuda" when a GPU is visible, else "cpu".

    Raises:
        UserInputError: ``AUTOML_DEVICE`` names no device torch knows, or a GPU that
            this process cannot see.
    """
    override = os.environ.get("AUTOML_DEVICE", "").strip()
    if override:
        return resolve_device(override, source="AUTOML_DEVICE")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: torch.device | str | None, *, source: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` (None: :func:`default_device`).

    Raises:
        UserInputError: an unparsable device string, or a CUDA device while none is
            available.
    """
    if device is None:
        return default_device()
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise UserInputError(
            f"The value of {source!r} is {device!r}, which is not a torch device; "
            "use 'cpu' or 'cuda' (or 'cuda:N')."
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(
            f"The value of {source!r} is {device!r}, but this process sees no GPU; use 'cpu'."
        )
    return resolved
