"""The built-in "1-d signals" data set: seeded synthetic time series, generated offline.

Its size and generator seed are fixed so that every loader (CLI, a DAG's
``load_if_missing``, a benchmark) gets the same rows.
"""

from __future__ import annotations

import numpy as np

SIGNALS_ROWS = 4000
SIGNALS_LENGTH = 40
SIGNALS_CLASSES = 10
SIGNALS_SEED = 0
_SIGNALS_NOISE = 0.25  # white-noise sd; the templates peak at 0.6-1.5
_SIGNALS_JITTER = 1.5  # sd (steps) of a bump's place across templates of a class


def make_signals(
    n_rows: int,
    *,
    length: int = SIGNALS_LENGTH,
    num_classes: int = SIGNALS_CLASSES,
    templates_per_class: int = 3,
    seed: int = SIGNALS_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic 1-d signals: ``x`` float32 ``[n_rows, length]``, ``y`` int64.

    Each class has a few templates, each a sum of Gaussian bumps at random places with
    random widths and signs. A row is one template of its class, circularly shifted by a
    random offset, scaled, on a random baseline and slope, plus white noise. The shift
    makes the class a shape rather than a set of positions, which a 1-d convolution
    learns and a small MLP only approximates; the noise keeps either from a perfect
    score after one epoch. Classes are balanced (counts differ by at most one) and the
    rows are shuffled. The same ``seed`` gives the same arrays on every machine (numpy's
    PCG64 stream).
    """
    if n_rows < num_classes:
        raise ValueError(f"n_rows is {n_rows}, but must be at least num_classes={num_classes}")
    rng = np.random.default_rng(seed)
    steps = np.arange(length, dtype=np.float64)
    templates = _signal_templates(rng, steps, num_classes, templates_per_class)
    # Balanced labels: the first n % C classes get one row more, then a seeded shuffle.
    y = rng.permutation(np.arange(n_rows) % num_classes)
    which = rng.integers(0, templates_per_class, n_rows)
    max_shift = length // 8
    shifts = rng.integers(-max_shift, max_shift + 1, n_rows)
    rows = templates[y, which]
    # Shift every row at once: index (t - shift) mod length along the time axis.
    index = (np.arange(length)[None, :] - shifts[:, None]) % length
    rows = np.take_along_axis(rows, index, axis=1)
    scale = rng.uniform(0.7, 1.3, (n_rows, 1))
    baseline = rng.normal(0.0, 0.2, (n_rows, 1))
    slope = rng.normal(0.0, 0.005, (n_rows, 1)) * (steps[None, :] - length / 2)
    noise = rng.normal(0.0, _SIGNALS_NOISE, (n_rows, length))
    x = scale * rows + baseline + slope + noise
    return x.astype(np.float32), y.astype(np.int64)


def _signal_templates(
    rng: np.random.Generator, steps: np.ndarray, num_classes: int, per_class: int
) -> np.ndarray:
    """``[num_classes, per_class, length]`` templates: a class motif and its variants.

    A class's motif is 2-4 Gaussian bumps (place, width, signed height); each template
    moves every bump a little and changes its height, so templates of one class look
    alike and those of different classes do not.
    """
    length = steps.shape[0]
    out = np.zeros((num_classes, per_class, length))
    for c in range(num_classes):
        bumps = int(rng.integers(2, 5))
        centre = rng.uniform(0, length, bumps)
        width = rng.uniform(1.0, 3.5, bumps)
        height = rng.choice([-1.0, 1.0], bumps) * rng.uniform(0.6, 1.5, bumps)
        for k in range(per_class):
            c_k = centre + rng.normal(0.0, _SIGNALS_JITTER, bumps)
            h_k = height * rng.uniform(0.7, 1.3, bumps)
            for b in range(bumps):
                # Circular distance, so a bump near an edge wraps as the shifts do.
                d = np.abs(steps - c_k[b]) % length
                d = np.minimum(d, length - d)
                out[c, k] += h_k[b] * np.exp(-0.5 * (d / width[b]) ** 2)
    return out
