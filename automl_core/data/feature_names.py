"""Feature names: which column of a DataFrame to score is which feature of a model.

A data set loaded from a CSV file keeps its feature columns' names in file order (the
label column left out): the source table's comment holds them (``load``), then the data
set's row (``prepare``, ``automl.datasets.feature_names``) and an export's model card
(``data.feature_names``). Other sources have none (None): their features have no names.

A model given a pandas DataFrame takes its feature columns by those names
(:func:`frame_columns`), as scikit-learn checks a DataFrame's feature names: a file whose
columns come in another order, or with an id or the label still in it, is scored right;
one without a feature column is refused by name, never scored with the wrong columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from automl_core.errors import UserInputError, shown

SHOW_NAMES = 5  # names a message lists before "..."


def check_feature_names(names: object, n_features: int, *, what: str) -> tuple[str, ...] | None:
    """``names`` as a tuple: ``n_features`` distinct strings, one per flattened feature in
    order; None stays None (the features have no names).

    Raises:
        ValueError: naming ``what`` (e.g. ``"data.feature_names"``) when ``names`` is not
            a list (or tuple) of ``n_features`` distinct strings.
    """
    if names is None:
        return None
    if (
        not isinstance(names, list | tuple)
        or len(names) != n_features
        or not all(isinstance(name, str) for name in names)
        or len(set(names)) != len(names)
    ):
        raise ValueError(
            f"{what} is {shown(names)}, but must be a list of {n_features} distinct strings (the "
            "names of the features, in training order) or null"
        )
    return tuple(names)


def name_list(names: Sequence[str]) -> str:
    """The first ``SHOW_NAMES`` of ``names`` quoted, then how many there are in all."""
    shown = ", ".join(repr(name) for name in names[:SHOW_NAMES])
    return shown if len(names) <= SHOW_NAMES else f"{shown}, ... ({len(names)} in all)"


def frame_columns(x: Any, names: tuple[str, ...] | None, *, dataset: str) -> Any:
    """The rows ``x`` to score, with a DataFrame's feature columns picked by name.

    ``x`` is returned as it is (its columns are then taken by position) unless ``names``
    is known and ``x`` is a DataFrame (it has ``columns`` and ``iloc``) or a Series (one
    row, its index the column names: ``df.iloc[0]``) at least one of whose labels is a
    string: then the columns (entries) called ``names``, in that order (the training
    order); others (an id, the label) are left out. A label is compared without
    surrounding spaces, as the loader reads a CSV header.

    Raises UserInputError naming ``dataset`` (the data set the model was trained on),
    the first missing columns and the ones it was trained on, when a feature column is
    missing; or naming the columns that two of the DataFrame's columns share.
    """
    if names is None or not hasattr(x, "iloc"):
        return x
    columns = getattr(x, "columns", None)
    one_row = columns is None
    given = getattr(x, "index", None) if one_row else columns
    if given is None:
        return x
    labels = [c.strip() if isinstance(c, str) else None for c in given]
    if all(label is None for label in labels):  # a RangeIndex: an array's columns
        return x
    position: dict[str, int] = {}
    shared: set[str] = set()
    for i, label in enumerate(labels):
        if label is not None:
            if label in position:
                shared.add(label)
            position.setdefault(label, i)
    what = "Series (one row, its index the columns)" if one_row else "DataFrame"
    missing = [name for name in names if name not in position]
    if missing:
        raise UserInputError(
            f"The {what} has no column {name_list(missing)} ({len(missing)} of the "
            f"model's {len(names)} features): the model was trained on data set {dataset!r}, "
            f"whose features are the columns {name_list(names)}. Pass one with those "
            "columns, in any order (others, such as an id or the label, are left out), or "
            "an array of the features in that order."
        )
    twice = [name for name in names if name in shared]
    if twice:
        raise UserInputError(
            f"The {what} has several columns called {name_list(twice)}: the model takes "
            "each feature from one column; drop or rename the others."
        )
    picked = [position[name] for name in names]
    return x.iloc[picked] if one_row else x.iloc[:, picked]
