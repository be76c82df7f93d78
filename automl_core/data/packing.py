"""The maths of packing: validation split, shuffling into partitions, buffers, normalisation.

Pure functions of their inputs and an injected ``numpy.random.Generator``; no I/O. The
order of random draws is part of the contract (the same seed gives the same packing), so
change it only together with a note in the changelog.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automl_core.errors import UserInputError

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


@dataclass(frozen=True)
class Normalization:
    """Global feature normalisation: ``(x - mean) / std``, both scalars over training rows.

    One scalar pair (not per feature): this is what image pipelines use and keeps relative
    scales between features; ``std`` is 1.0 when the features are constant.
    """

    mean: float
    std: float

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x`` normalised, as a new float32 array.

        float32 arithmetic (two roundings, within 2 ulp of the exact value) halves the
        memory traffic of packing; the reader's ``normalize`` calls this same method, so
        rows scored later are normalised bit for bit as the packed ones were.
        """
        out = np.subtract(x, np.float32(self.mean), dtype=np.float32)
        out /= np.float32(self.std)
        return out


def global_normalization(x: np.ndarray, rows: np.ndarray, chunk_rows: int = 16384) -> Normalization:
    """Mean and (population) standard deviation of every value in ``x[rows]``.

    Works in float64 chunks of ``rows`` and merges them with Chan et al.'s parallel update
    (``M2 = M2_a + M2_b + delta^2 * n_a * n_b / n``), so no full float64 copy is made and
    large values do not lose precision as a naive sum of squares would.
    """
    rows = np.sort(rows)  # gathers in memory order are faster; the result does not change
    count = 0
    mean = 0.0
    m2 = 0.0
    for start in range(0, rows.size, chunk_rows):
        block = x[rows[start : start + chunk_rows]].astype(np.float64).ravel()
        nb = block.size
        mb = float(block.mean())
        m2b = float(((block - mb) ** 2).sum())
        delta = mb - mean
        total = count + nb
        mean += delta * nb / total
        m2 += m2b + delta * delta * count * nb / total
        count = total
    if count == 0:
        raise ValueError("no rows to normalise over")
    std = float(np.sqrt(m2 / count))
    return Normalization(mean=float(mean), std=std if std > 0.0 else 1.0)
