"""Which format a model state's bytes are in, without importing torch.

Exporting reads this; only ``training/state.py`` (which imports torch) reads the bytes.

- Format 2 (written now): a safetensors file. Its tensors are named by their place in
  the state (``model/fc.weight``, ``optimizer/state/0/exp_avg``, ``rng``), and the rest
  of the state (numbers, the optimiser's hyperparameters, the tree's shape) is JSON in
  the file's metadata under ``automl_state``. No pickle anywhere.
- Format 1 (read only, checkpoints written before): a ``torch.save`` zip archive, read
  with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

TORCH_ARCHIVE_MAGIC = b"PK\x03\x04"  # a torch.save archive is a zip file
METADATA_KEY = "automl_state"


def is_torch_archive(data: bytes | bytearray | memoryview) -> bool:
    """True for format 1 (a ``torch.save`` archive), False for anything else."""
    return bytes(data[: len(TORCH_ARCHIVE_MAGIC)]) == TORCH_ARCHIVE_MAGIC


def state_file_name(stem: str, data: bytes | bytearray | memoryview) -> str:
    """``stem`` with the suffix the state's format goes by: ``.safetensors`` or ``.pt``."""
    return f"{stem}.pt" if is_torch_archive(data) else f"{stem}.safetensors"
