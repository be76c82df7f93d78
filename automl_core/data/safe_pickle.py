"""Unpickling data files without running arbitrary code.

The CIFAR-10 "python version" batches are pickles. A pickle can name any importable
callable (``os.system``) and have it called while loading, so ``pickle.load`` on a
downloaded file is code execution. :class:`RestrictedUnpickler` resolves only the few
globals that a pickled dict of numpy arrays needs; every other global is refused.
"""

from __future__ import annotations

import codecs
import importlib
import io
import pickle
from typing import Any

import numpy as np

_multiarray = importlib.import_module("numpy._core.multiarray")
_numeric = importlib.import_module("numpy._core.numeric")

# (module, name) -> object. numpy 1 pickles name ``numpy.core.multiarray``; numpy 2 names
# ``numpy._core``; both resolve to the numpy 2 objects (``numpy.core`` warns on import).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes at protocol <= 2 as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that builds only builtins (dict, list, bytes, ...) and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only plain data and numpy arrays "
                "are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing persistent ids in a data pickle")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing only builtins and numpy arrays.

    ``encoding="bytes"`` reads Python 2 pickles (as the CIFAR-10 batches are) with their
    ``str`` values as bytes. Raises UnsafePickleError for any other global, and
    ``pickle.UnpicklingError``/``EOFError``/``ValueError`` for a damaged stream.
    """
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
