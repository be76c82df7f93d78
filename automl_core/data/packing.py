"""The maths of packing: validation split, shuffling into partitions, buffers, normalisation.

Pure functions of their inputs and an injected ``numpy.random.Generator``; no I/O. The
order of random draws is part of the contract (the same seed gives the same packing), so
change it only together with a note in the changelog.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from automl_core.errors import UserInputError, shown

DEFAULT_BUFFER_BYTES = 16 << 20
# bytea values are limited to 1 GB; stay well below it so a buffer also fits in a COPY message.
MAX_BUFFER_BYTES = 512 << 20


def partition_sizes(n: int, partitions: int) -> list[int]:
    """Sizes of ``partitions`` near-equal parts of ``n`` rows: they differ by at most one,
    the larger parts first (as ``numpy.array_split``)."""
    if partitions < 1:
        raise ValueError(f"The value of partitions is {partitions}, but must be >= 1.")
    base, extra = divmod(n, partitions)
    return [base + (1 if p < extra else 0) for p in range(partitions)]


def split_partitions(
    rows: np.ndarray, partitions: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffle ``rows`` (indices) with ``rng`` and cut them into ``partitions`` near-equal parts."""
    shuffled = rows[rng.permutation(rows.size)]
    bounds = np.cumsum([0, *partition_sizes(rows.size, partitions)])
    return [shuffled[bounds[p] : bounds[p + 1]] for p in range(partitions)]


def stratified_validation(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """A boolean mask choosing ``round(fraction * n)`` rows for validation, stratified by label.

    Each class gives ``floor(fraction * count)`` rows; the rows left over from rounding go to
    the classes with the largest remainders (ties to the lower class index), so the total is
    exact and each class keeps its share within one row. Within a class the rows are drawn
    with ``rng``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"The value of fraction is {fraction}, but must be in (0, 1).")
    n = labels.size
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = fraction * counts
    take = np.floor(quota).astype(np.int64)
    left = int(round(fraction * n)) - int(take.sum())
    if left > 0:
        # Largest remainder first; stable sort keeps the lower class first among ties.
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:left]] += 1
    mask = np.zeros(n, dtype=bool)
    for c in range(classes.size):
        members = np.flatnonzero(inverse == c)
        mask[members[rng.permutation(members.size)[: take[c]]]] = True
    return mask


def default_buffer_size(row_bytes: int, rows_per_partition: int) -> int:
    """Rows per buffer so that one buffer's features are about 16 MiB, at most a partition."""
    rows = max(1, DEFAULT_BUFFER_BYTES // max(row_bytes, 1))
    return max(1, min(rows, rows_per_partition))


def check_buffer_size(buffer_size: int, row_bytes: int) -> None:
    """Raise UserInputError unless ``--buffer-size`` is >= 1 and its bytes fit a bytea value."""
    if buffer_size < 1:
        raise UserInputError(f"--buffer-size is {buffer_size}, but must be at least 1 row.")
    if buffer_size * row_bytes > MAX_BUFFER_BYTES:
        most = MAX_BUFFER_BYTES // row_bytes
        raise UserInputError(
            f"--buffer-size {buffer_size} makes buffers of {buffer_size * row_bytes} bytes; "
            f"the limit is {MAX_BUFFER_BYTES} bytes: use at most {most} rows."
        )


def buffer_slices(n: int, buffer_size: int) -> list[slice]:
    """Consecutive slices of at most ``buffer_size`` rows covering ``range(n)``."""
    return [slice(a, min(a + buffer_size, n)) for a in range(0, n, buffer_size)]


#: ``--normalize`` choices. ``auto``: per feature for a source whose features were separate
#: columns in their own units (a CSV file's), global for array features (images, signals,
#: a table's ``features`` array) and the built-in data sets.
NORMALIZE_CHOICES = ("auto", "per-feature", "global")
# Loader specs (``data.sources``) whose features were separate columns.
_COLUMN_SOURCES = ("csv:",)


def normalization_kind(choice: str, source: str) -> str:
    """``"per-feature"`` or ``"global"``: ``choice`` (one of ``NORMALIZE_CHOICES``) for a data
    set whose source is ``source`` (its loader spec, ``csv:PATH``, or a table's name).

    Raises ValueError for another ``choice``.
    """
    if choice not in NORMALIZE_CHOICES:
        raise ValueError(
            f"The value of choice is {choice!r}, but must be one of {NORMALIZE_CHOICES}."
        )
    if choice != "auto":
        return choice
    return "per-feature" if source.startswith(_COLUMN_SOURCES) else "global"


Stat = float | tuple[float, ...]


@dataclass(frozen=True)
class Normalization:
    """Feature normalisation ``(x - mean) / std`` with statistics of the training rows.

    Global: ``mean`` and ``std`` are floats over every value of every feature, what image
    and sequence pipelines use (relative scales between pixels or time steps are kept).
    Per feature: tuples with one value per flattened feature (``prod(feature_shape)``),
    scikit-learn's ``StandardScaler``, for columns in different units.
    :func:`fit_normalization` and :meth:`from_dict` make a ``std`` of 0 (constant
    features), or one below float32's smallest normal number, 1.0. Raises ValueError
    unless both are floats or both tuples of one (non-zero) length.
    """

    mean: Stat
    std: Stat

    def __post_init__(self) -> None:
        lengths = {len(v) if isinstance(v, tuple) else None for _, v in self._pairs()}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(
                f"The values of mean and std are {shown(self.mean)} and {shown(self.std)}, "
                "but must both be floats, or both tuples of one value per feature."
            )

    @property
    def kind(self) -> str:
        """``"per-feature"`` or ``"global"`` (see :func:`normalization_kind`)."""
        return "per-feature" if isinstance(self.mean, tuple) else "global"

    def as_dict(self) -> dict[str, float | list[float]]:
        """The stored form (``automl.datasets.normalization``, an experiment's copy of it, the
        model card): ``{"mean": m, "std": s}``, numbers, or lists of numbers per feature."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._pairs()}

    def _pairs(self) -> tuple[tuple[str, Stat], tuple[str, Stat]]:
        return ("mean", self.mean), ("std", self.std)

    @classmethod
    def from_dict(
        cls,
        values: Mapping[str, Any],
        *,
        n_features: int | None = None,
        what: str = "normalization",
    ) -> Normalization:
        """The inverse of :meth:`as_dict`; records written before per-feature statistics
        (numbers) read as they always did. A missing key reads as 0 (mean) or 1 (std), a
        ``std`` of 0 as 1.

        Raises ValueError naming ``what`` unless ``mean`` and ``std`` are both finite numbers,
        or both lists of finite numbers of one length (``n_features`` when given), with no
        negative ``std``.
        """

        def problem(detail: str = "") -> ValueError:  # built only on failure: lists are long
            wanted = f"{n_features} " if n_features is not None else ""
            return ValueError(
                f"{what} is {shown(values)}: mean and std must both be finite numbers, or "
                f"both lists of {wanted}finite numbers (one per feature){detail}"
            )

        if not isinstance(values, Mapping):
            raise problem()
        got = [values.get("mean", 0.0), values.get("std", 1.0)]
        numbers = [x for v in got for x in (v if isinstance(v, list | tuple) else [v])]
        if not all(_is_number(x) for x in numbers):
            raise problem()
        stds = got[1] if isinstance(got[1], list | tuple) else [got[1]]
        if any(s < 0 for s in stds):
            raise problem(", and no std may be negative")
        mean, std = (tuple(map(float, v)) if isinstance(v, list | tuple) else float(v) for v in got)
        try:
            norm = cls(mean=mean, std=_ones_for_zeros(std))
        except ValueError:
            raise problem() from None
        if isinstance(norm.mean, tuple) and n_features not in (None, len(norm.mean)):
            raise problem(f", not {len(norm.mean)}")
        return norm

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x`` normalised, as a new float32 array of its shape.

        Global statistics take any shape; per-feature ones rows ``[n, ...]`` of
        ``n_features`` values each, in the C order the statistics were fitted in (ValueError
        for another row size). float32 arithmetic (two roundings, within 2 ulp of the exact
        value) halves the memory traffic of packing; the reader's ``normalize`` calls this
        same method, so rows scored later are normalised bit for bit as the packed ones were.
        """
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if not mean.ndim:
            out = np.subtract(x, mean, dtype=np.float32)
            out /= std
            return out
        if x.ndim < 1 or math.prod(x.shape[1:]) != mean.size:
            raise ValueError(
                f"per-feature normalisation of {mean.size} features needs rows of "
                f"{mean.size} values, not an array of shape {x.shape}"
            )
        flat = np.subtract(x.reshape(x.shape[0], mean.size), mean, dtype=np.float32)
        flat /= std
        return flat.reshape(x.shape)

    def isclose(self, other: Normalization) -> bool:
        """The same kind and statistics, up to the rounding of summing the same rows in
        another order (as re-packing them into other partitions does)."""
        return self.kind == other.kind and all(
            np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-6, atol=1e-9)
            for (_, a), (_, b) in zip(self._pairs(), other._pairs(), strict=True)
        )


# The smallest normal float32: ``apply`` divides in float32, where a smaller std rounds
# to 0 or to a subnormal and the quotient to inf or noise.
_TINY_STD = float(np.finfo(np.float32).tiny)


def _ones_for_zeros(std: Stat) -> Stat:
    """A ``std`` of 0 (constant features), or one too small for float32, as 1.0: such
    features are centred, not scaled."""
    if isinstance(std, tuple):
        return tuple(s if s >= _TINY_STD else 1.0 for s in std)
    return std if std >= _TINY_STD else 1.0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


FIT_CHUNK_BYTES = 32 * 2**20  # float64 bytes per block of rows in fit_normalization


def fit_normalization(
    x: np.ndarray, rows: np.ndarray, *, per_feature: bool = False, chunk_rows: int | None = None
) -> Normalization:
    """Mean and (population) standard deviation of ``x[rows]`` (``x`` ``[n, ...]``, any
    float or integer dtype): over every value (global), or per feature (each column of the
    rows flattened to ``[k, prod(x.shape[1:])]``).

    Works in float64 chunks of ``chunk_rows`` rows (default: ``FIT_CHUNK_BYTES`` of them,
    so that wide rows such as images do not make blocks of hundreds of MB) and merges them with Chan et al.'s
    parallel update, per column for per-feature statistics
    (``M2 = M2_a + M2_b + delta^2 * n_a * n_b / n``), so no full float64 copy is made and
    large values do not lose precision as a naive sum of squares would. Raises ValueError
    when ``rows`` is empty.
    """
    rows = np.sort(rows)  # gathers in memory order are faster; the result does not change
    width = int(np.prod(x.shape[1:]))
    if chunk_rows is None:
        chunk_rows = max(1, FIT_CHUNK_BYTES // (8 * max(width, 1)))
    count = 0
    mean: Any = np.zeros(width if per_feature else ())
    m2: Any = np.zeros_like(mean)
    for start in range(0, rows.size, chunk_rows):
        block = x[rows[start : start + chunk_rows]].astype(np.float64)
        # Global: one column of every value (the 1-D reduction sums pairwise, as it always has).
        block = block.reshape(-1, width) if per_feature else block.ravel()
        nb = block.shape[0]
        mb = block.mean(axis=0)
        m2b = ((block - mb) ** 2).sum(axis=0)
        delta = mb - mean
        total = count + nb
        mean = mean + delta * nb / total
        m2 = m2 + m2b + delta * delta * count * nb / total
        count = total
    if count == 0:
        raise ValueError("no rows to normalise over")
    std = np.sqrt(m2 / count)
    if per_feature:
        return Normalization(mean=tuple(mean.tolist()), std=_ones_for_zeros(tuple(std.tolist())))
    return Normalization(mean=float(mean), std=_ones_for_zeros(float(std)))
