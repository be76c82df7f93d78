"""Data sources for ``automl data load``: where rows come from, read and checked in memory.

A source spec is ``digits``, ``signals``, ``csv:PATH``, ``npz:PATH`` or ``cifar10:DIR``. Each reader
returns a :class:`SourceData` whose features are finite float32 and whose labels are
already classified as integers or text, so a bad file is refused before the database is
touched. A CSV file of rows to score may have no label column (``labeled=False``,
``automl data load --no-label``): its ``SourceData`` has no labels.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from automl_core.data.csv_source import parse_csv
from automl_core.data.safe_pickle import restricted_loads
from automl_core.data.signals import SIGNALS_ROWS, SIGNALS_SEED, make_signals
from automl_core.data.validate import as_feature_array, check_label_array, infer_labels
from automl_core.errors import UserInputError

SCHEMES = ("digits", "signals", "csv:PATH", "npz:PATH", "cifar10:DIR")
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
# The one part of a source without labels: rows to score. No table has such a split:
# the loader writes no split column for them (only the comment counts them so).
SCORE_SPLIT = "score"


@dataclass(frozen=True)
class SplitPart:
    """The rows of one split: features ``x`` float32 ``[n, *feature_shape]`` and labels
    (None for rows to score, without labels)."""

    split: str
    x: np.ndarray
    labels: np.ndarray | None


@dataclass(frozen=True)
class SourceData:
    """A whole source in memory, checked: same feature shape and label type in every part.

    ``feature_names``: one per flattened feature, in order, for a source whose features
    are named columns (a CSV file's); None for the others. ``label_type`` None: rows to
    score, without labels (one part, ``SCORE_SPLIT``, whose ``labels`` are None).
    """

    source: str
    feature_shape: tuple[int, ...]
    label_type: str | None  # "integer", "bigint" or "text"; None: no labels
    parts: tuple[SplitPart, ...]
    feature_names: tuple[str, ...] | None = None

    @property
    def n_rows(self) -> int:
        return sum(p.x.shape[0] for p in self.parts)

    @property
    def feature_bytes(self) -> int:
        return sum(p.x.nbytes for p in self.parts)


def read_source(spec: str, *, label_column: str = "label", labeled: bool = True) -> SourceData:
    """Read and check the source named by ``spec``.

    ``label_column`` applies to CSV only, and so does ``labeled=False`` (a file without a
    label column, of rows to score). Raises UserInputError for an unknown scheme, a
    missing or unreadable file, any bad content (see the readers), and ``labeled=False``
    with a source that is not a CSV file, before reading anything.
    """
    scheme, sep, arg = spec.partition(":")
    if not labeled and scheme != "csv":
        raise UserInputError(
            f"--no-label applies to csv: sources only, but the source is {spec!r}: load "
            "rows to score from a CSV file without a label column, or leave --no-label out."
        )
    if scheme == "digits" and not sep:
        return read_digits()
    if scheme == "signals" and not sep:
        return read_signals()
    if sep and not arg:
        raise UserInputError(f"The source {spec!r} has no path after {scheme + ':'!r}.")
    if scheme == "csv" and sep:
        return read_csv(Path(arg), label_column=label_column, labeled=labeled)
    if scheme == "npz" and sep:
        return read_npz(Path(arg))
    if scheme == "cifar10" and sep:
        return read_cifar10(Path(arg))
    raise UserInputError(
        f"Unknown data source {spec!r}: use one of {', '.join(SCHEMES)} "
        "(for example npz:/data/train.npz)."
    )


def _assemble(
    source: str,
    parts: list[tuple[str, np.ndarray, object]],
    *,
    where: Callable[[int], str] | None = None,
    feature_names: tuple[str, ...] | None = None,
) -> SourceData:
    """Check features and labels of every part and join them into a SourceData.

    ``where(i)`` names row ``i`` of the parts taken together in label messages; by default
    its position in its split. ``feature_names`` (one per feature) is kept as it is.
    """
    checked: list[tuple[str, np.ndarray, np.ndarray]] = []
    for split, x, labels in parts:
        what = f"{source} ({split} split)" if len(parts) > 1 else source
        lab = check_label_array(labels, source=what)  # before shape[0]: y may be 0-d
        checked.append((split, as_feature_array(x, source=what, n_rows=lab.shape[0]), lab))
    shapes = {x.shape[1:] for _, x, _ in checked}
    if len(shapes) != 1:
        raise UserInputError(
            f"The splits of {source} have different feature shapes {sorted(shapes)}: they "
            "must match."
        )
    # Infer the label type over all splits at once: "3" in train and "cat" in test is text.
    labs = [lab for _, _, lab in checked]
    if all(lab.dtype.kind in "iubf" for lab in labs):
        all_labels = np.concatenate(labs)
    else:
        all_labels = np.concatenate([lab.astype(object) for lab in labs])
    labels, label_type = infer_labels(
        all_labels, source=source, where=where or _split_rows([(s, x) for s, x, _ in checked])
    )
    out, start = [], 0
    for split, x, _ in checked:
        n = x.shape[0]
        out.append(SplitPart(split=split, x=x, labels=labels[start : start + n]))
        start += n
    shape = tuple(int(s) for s in shapes.pop())
    return SourceData(source, shape, label_type, tuple(out), feature_names)


def _split_rows(parts: list[tuple[str, np.ndarray]]) -> Callable[[int], str]:
    """``where`` for parts taken together: row ``i`` counted within its own split."""
    ends = np.cumsum([x.shape[0] for _, x in parts])

    def where(i: int) -> str:
        k = int(np.searchsorted(ends, i, side="right"))
        row = i - (int(ends[k - 1]) if k else 0)
        return f"row {row}" if len(parts) == 1 else f"row {row} of the {parts[k][0]} split"

    return where


def read_digits() -> SourceData:
    """sklearn's bundled digits: 1797 rows of 64 features (8x8 pixels, 0..16), labels 0..9.

    Digits has no test split, so every row is ``train``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _assemble("digits", [("train", bunch.data, bunch.target)])


def read_signals(seed: int = SIGNALS_SEED) -> SourceData:
    """The built-in "1-d signals": 4,000 rows of 40 steps, 10 balanced classes, offline.

    See :func:`make_signals`. Every row is ``train`` (prepare holds out validation rows).
    """
    x, y = make_signals(SIGNALS_ROWS, seed=seed)
    return _assemble("signals", [("train", x, y)])


def read_csv(path: Path, *, label_column: str = "label", labeled: bool = True) -> SourceData:
    """A CSV with a header row: ``label_column`` plus numeric feature columns, whose
    names (in file order) become ``feature_names``; with ``labeled=False``, numeric
    feature columns only (rows to score: ``label_type`` None, split ``SCORE_SPLIT``).

    Every labelled row is ``train``; rows get ids 0..n-1 in file order when loaded. Raises
    UserInputError for a missing file, a missing header or label column, a column named
    ``id`` or ``split`` (the loader makes those), and for a bad row (wrong number of
    fields, a feature that is not a plain ASCII decimal number, NaN or infinity, a missing
    or bad label; see :func:`~automl_core.data.validate.infer_labels`), naming its line
    (:func:`~automl_core.data.csv_source.parse_csv`).
    """
    source = f"csv:{path}"
    _check_file(path, source)
    rows = parse_csv(path, label_column=label_column if labeled else None, source=source)
    if rows.labels is None:
        x = rows.x  # finite float32 [n, d], n and d at least 1: checked by parse_csv
        shape = (int(x.shape[1]),)
        return SourceData(
            source, shape, None, (SplitPart(SCORE_SPLIT, x, None),), rows.feature_names
        )
    return _assemble(
        source,
        [("train", rows.x, rows.labels)],
        where=lambda i: f"line {rows.lines[i]}",
        feature_names=rows.feature_names,
    )


def read_npz(path: Path) -> SourceData:
    """A numpy ``.npz`` with arrays ``x`` and ``y`` and optionally ``x_test`` and ``y_test``.

    ``x`` may be multi-dimensional (e.g. ``[n, 3, 32, 32]``); its trailing shape becomes the
    feature shape. Object arrays (ragged rows) are refused: they would need pickle.
    """
    source = f"npz:{path}"
    _check_file(path, source)
    with path.open("rb") as fh:
        magic = fh.read(4)
    # np.load guesses the format from the content and would call anything else a pickle.
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise UserInputError(
            f"{source} is not a readable .npz file (not a zip archive): save the arrays with "
            "numpy.savez(path, x=..., y=...)."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            missing = [name for name in ("x", "y") if name not in keys]
            if missing:
                arrays = " and ".join(repr(name) for name in missing)
                raise UserInputError(
                    f"{source}: the array{'s' if len(missing) > 1 else ''} {arrays} "
                    f"{'are' if len(missing) > 1 else 'is'} missing (it has "
                    f"{sorted(keys) or 'no arrays'}): save features as 'x' and labels as "
                    "'y', e.g. numpy.savez(path, x=features, y=labels)."
                )
            if ("x_test" in keys) != ("y_test" in keys):
                raise UserInputError(f"{source} must have both 'x_test' and 'y_test' or neither.")
            names = [("train", "x", "y")]
            if "x_test" in keys:
                names.append(("test", "x_test", "y_test"))
            parts: list[tuple[str, np.ndarray, object]] = [
                (split, _npz_array(npz, x, source), _npz_array(npz, y, source))
                for split, x, y in names
            ]
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserInputError(f"{source} is not a readable .npz file ({exc}).") from None
    return _assemble(source, parts)


def _npz_array(npz: Any, name: str, source: str) -> np.ndarray:
    try:
        return np.asarray(npz[name])
    except ValueError as exc:
        # allow_pickle=False refuses object arrays: ragged or non-numeric content.
        raise UserInputError(
            f"{source}: the array {name!r} is an object array ({exc}): it must be a regular "
            "numeric array (no ragged rows, no Python objects)."
        ) from None


def read_cifar10(directory: Path) -> SourceData:
    """The CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``) in ``directory``.

    ``directory`` may also be the folder that holds the extracted ``cifar-10-batches-py``.
    Batches are unpickled with an allow-list (plain data and numpy arrays only). Features
    are the raw 0..255 pixels as shape ``(3, 32, 32)``; labels 0..9.
    """
    source = f"cifar10:{directory}"
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    if not directory.is_dir():
        raise UserInputError(f"{source}: no such directory; pass the folder with the batches.")
    names = (*CIFAR_TRAIN, CIFAR_TEST)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise UserInputError(
            f"{source} lacks {missing}: expected the CIFAR-10 python batches "
            f"{', '.join(names)} (from cifar-10-python.tar.gz)."
        )
    train = [_cifar_batch(directory / n, source) for n in CIFAR_TRAIN]
    test = _cifar_batch(directory / CIFAR_TEST, source)
    x = np.concatenate([b[0] for b in train])
    y = np.concatenate([b[1] for b in train])
    return _assemble(source, [("train", x, y), ("test", test[0], test[1])])


def _cifar_batch(path: Path, source: str) -> tuple[np.ndarray, np.ndarray]:
    import pickle

    try:
        batch = restricted_loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise UserInputError(
            f"{source}: {path.name} is not a CIFAR-10 python batch ({exc})."
        ) from None
    if not isinstance(batch, dict):
        raise UserInputError(f"{source}: {path.name} is not a CIFAR-10 batch (not a dict).")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if (
        not isinstance(data, np.ndarray)
        or data.ndim != 2
        or data.shape[1] != 3 * 32 * 32
        or labels is None
        or len(labels) != data.shape[0]
    ):
        raise UserInputError(
            f"{source}: {path.name} must hold b'data' (uint8 [n, 3072]) and b'labels' (n integers)."
        )
    return data.reshape(-1, 3, 32, 32), np.asarray(labels)


def _check_file(path: Path, source: str) -> None:
    if not path.is_file():
        raise UserInputError(f"{source}: no such file; check the path.")
