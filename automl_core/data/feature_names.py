"""Feature names: which column of a DataFrame to score is which feature of a model.

A data set loaded from a CSV file keeps its feature columns' names in file order (the
label column left out): the source table's comment holds them (``load``), then the data
set's row (``prepare``, ``automl.datasets.feature_names``) and an export's model card
(``data.feature_names``). Other sources have none (None): their features have no names.

A model given a pandas DataFrame takes its feature columns by those names
(:func:`frame_columns`), as scikit-learn checks a DataFrame's feature names: a file whose
columns come in another order, or with an id or the label still in it, is scored right;
one without a feature column is refused by name, never scored with the wrong columns.
A table loaded from a CSV is read the same way by ``automl predict`` and ``automl
evaluate`` (:func:`table_order`), except that a feature the model does not take is
refused there: the table's ``features`` array holds every column it was loaded with.
Both find each name with :func:`match_names`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def listed_names(meta: Mapping[str, Any], n_features: int | None) -> tuple[str, ...] | None:
    """The feature names a source table's comment (``meta``, the loader's JSON) lists, when
    they still fit its rows of ``n_features`` values; None when it lists none, when the
    rows changed since (another width, or no row: None), or when the list was edited by
    hand into something that is not one distinct string per feature (the features then
    lose their names rather than fail)."""
    listed = meta.get("feature_names")
    if n_features is None or not isinstance(listed, list) or len(listed) != n_features:
        return None
    try:
        return check_feature_names(listed, n_features, what="feature_names")
    except ValueError:
        return None


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
    match = match_names(labels, names)
    what = "Series (one row, its index the columns)" if one_row else "DataFrame"
    if match.missing:
        raise UserInputError(
            f"The {what} has no column {name_list(match.missing)} ({len(match.missing)} of the "
            f"model's {len(names)} features): the model was trained on data set {dataset!r}, "
            f"whose features are the columns {name_list(names)}. Pass one with those "
            "columns, in any order (others, such as an id or the label, are left out), or "
            "an array of the features in that order."
        )
    if match.repeated:
        raise UserInputError(
            f"The {what} has several columns called {name_list(match.repeated)}: the model "
            "takes each feature from one column; drop or rename the others."
        )
    picked = list(match.positions)
    return x.iloc[picked] if one_row else x.iloc[:, picked]


@dataclass(frozen=True)
class NameMatch:
    """Where the names a model wants are among the names given (:func:`match_names`)."""

    positions: tuple[int, ...]  # of each wanted name found, in the wanted order
    missing: tuple[str, ...]  # wanted, not given
    repeated: tuple[str, ...]  # wanted, given more than once (``positions`` has the first)
    extra: tuple[str, ...]  # given (and not None), not wanted; in the given order


def match_names(given: Sequence[str | None], wanted: Sequence[str]) -> NameMatch:
    """Find each of ``wanted`` among ``given`` (None: an entry without a name, which
    matches nothing and is no ``extra``). ``positions`` is the permutation that puts the
    given entries in the wanted order when nothing is missing."""
    position: dict[str, int] = {}
    seen_twice: set[str] = set()
    for i, name in enumerate(given):
        if name is not None:
            if name in position:
                seen_twice.add(name)
            position.setdefault(name, i)
    known = set(wanted)
    return NameMatch(
        positions=tuple(position[name] for name in wanted if name in position),
        missing=tuple(name for name in wanted if name not in position),
        repeated=tuple(name for name in wanted if name in seen_twice),
        extra=tuple(name for name in position if name not in known),
    )


def table_order(
    table_names: Sequence[str], names: Sequence[str], *, table: str, dataset: str
) -> list[int] | None:
    """The positions in a table's feature array (whose entries ``table_names`` names, as
    its loader's comment does) of the model's features ``names``, in the model's order;
    None when they are already in that order.

    Raises UserInputError naming ``table``, the model's data set ``dataset`` and the
    names, when a feature of the model is missing from the table, or the table has
    features the model does not take (the array would not fit the model either).
    """
    match = match_names(table_names, names)
    fix = (
        f"`automl data load csv:PATH --table {table} --replace`, with --no-label for rows "
        "without a label"
    )
    if match.missing:
        raise UserInputError(
            f"The table {table!r} has no feature {name_list(match.missing)} "
            f"({len(match.missing)} of the model's {len(names)} features; its comment names "
            f"the columns it was loaded with: {name_list(table_names)}): the model was "
            f"trained on data set {dataset!r}, whose features are the columns "
            f"{name_list(names)}. Load a file with those columns, in any order ({fix})."
        )
    if match.extra:
        raise UserInputError(
            f"The table {table!r} has the feature(s) {name_list(match.extra)}, which the "
            f"model does not take: it was trained on data set {dataset!r}, whose "
            f"features are the columns {name_list(names)}. Load the file "
            f"without the other columns ({fix}; a label column loaded with --no-label is "
            "read as a feature)."
        )
    order = list(match.positions)
    return None if order == list(range(len(order))) else order
