"""Checks on user input to the data commands: table names, feature arrays and labels.

Every check raises :class:`~automl_core.errors.UserInputError` naming the input and the
fix, and runs before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

from automl_core.errors import UserInputError

# PostgreSQL truncates identifiers at 63 bytes; an ASCII-only pattern keeps bytes == chars.
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# An integer, or an integral decimal ("2.0", "2."), as CSV files write class numbers.
_INT_RE = re.compile(r"([+-]?[0-9]+)(?:\.0*)?")
PACKED_SUFFIX = "_packed"
MAX_NAME_LEN = 63

SPLITS = ("train", "test")
# Column types (as ``format_type`` spells them) of the id and features a table of rows needs.
INT_TYPES = ("smallint", "integer", "bigint")
NUMERIC_ARRAY_TYPES = ("real[]", "double precision[]", "smallint[]", "integer[]", "bigint[]")


def validate_table_name(name: str, *, what: str = "table name") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise UserInputError.

    Names are checked against ``^[A-Za-z_][A-Za-z0-9_]{0,62}$`` before they reach any SQL,
    so quotes, semicolons, dots (schema qualification) and spaces are refused even though
    every statement also quotes them with ``sql.Identifier``.
    """
    # fullmatch, not match: "$" also matches before a trailing newline.
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise UserInputError(
            f"The {what} {name!r} is not a plain SQL identifier: use letters, digits and "
            "underscores, starting with a letter or underscore, at most 63 characters "
            "(no quotes, dots, semicolons or spaces)."
        )
    return name


def validate_output_table(name: str, *, option: str, what: str = "table name") -> str:
    """Return ``name`` if a user may create or replace a table of that name, else raise.

    On top of :func:`validate_table_name`, names ending in ``_packed`` are refused: they
    are the packed tables ``automl data prepare`` makes and the searches read, so a
    user-named table (``--table``, ``--out-table``) never overwrites one, or takes the
    name a later ``prepare`` needs. ``option`` and ``what`` name the input in messages.
    """
    validate_table_name(name, what=what)
    if name.endswith(PACKED_SUFFIX):
        dataset = name[: -len(PACKED_SUFFIX)] or "?"
        raise UserInputError(
            f"The value of {option} is {name!r}, but names ending in {PACKED_SUFFIX!r} are "
            f"reserved for packed tables (this one is data set {dataset!r}'s, made by "
            f"`automl data prepare`): choose another {option}."
        )
    return name


def check_row_columns(table: str, columns: Mapping[str, str], *, label: bool = False) -> None:
    """Check that ``table`` has the columns predict and evaluate read, of usable types.

    ``columns`` maps name -> SQL type (as ``tables.table_columns`` gives them). Raises
    UserInputError naming the table, the column and the fix when ``id``, ``features`` or
    (with ``label``) ``label`` is missing, when ``id`` is not an integer type (predictions
    are keyed by it) or when ``features`` is not an array of numbers (``numeric[]``
    included): checked up front, so that no row is converted, scored or written first.
    """
    needed = ["id", "features", "label"] if label else ["id", "features"]
    if not set(needed) <= set(columns):
        wants = "id, features and label" if label else "id and features (an array)"
        kind = " for labelled data" if label else ""
        raise UserInputError(
            f"The table {table!r} has columns {sorted(columns)}, but needs {wants}, as "
            f"`automl data load` writes them{kind}."
        )
    if columns["id"] not in INT_TYPES:
        raise UserInputError(
            f"The column 'id' of {table!r} has type {columns['id']}, but must be an integer "
            f"({', '.join(INT_TYPES)}), which keys each row's result: load the data with "
            "`automl data load`, or copy it into a table with an integer id "
            "(e.g. `row_number() OVER () AS id`)."
        )
    ftype = columns["features"]
    if ftype not in NUMERIC_ARRAY_TYPES and not (
        ftype.startswith("numeric") and ftype.endswith("[]")
    ):
        raise UserInputError(
            f"The column 'features' of {table!r} has type {ftype}, but must be an array of "
            "numbers (real[], double precision[], an integer array or numeric[]): load the "
            "data with `automl data load`, or copy it into a table with `features::real[]`."
        )


def packed_table_name(name: str) -> str:
    """The packed table of dataset ``name`` (``<name>_packed``), checked to fit 63 chars."""
    validate_table_name(name, what="dataset name")
    packed = name + PACKED_SUFFIX
    if len(packed) > MAX_NAME_LEN:
        raise UserInputError(
            f"The dataset name {name!r} is too long: its packed table {packed!r} would exceed "
            f"{MAX_NAME_LEN} characters. Use a name of at most "
            f"{MAX_NAME_LEN - len(PACKED_SUFFIX)} characters."
        )
    return packed


def as_feature_array(values: object, *, source: str, n_rows: int | None = None) -> np.ndarray:
    """Convert features to a finite float32 array ``[n, *feature_shape]``.

    Raises UserInputError (naming ``source``) when the values are not numeric, are ragged
    (rows of different lengths), have no feature dimension, contain NaN or infinity, or
    when ``n_rows`` is given and does not match.
    """
    arr = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if arr.dtype == object:
        raise UserInputError(
            f"The features of {source} are ragged or non-numeric (an object array): every "
            "row must have the same number of numeric features."
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise UserInputError(
            f"The features of {source} have dtype {arr.dtype}, which is not numeric: "
            "store numbers (integers or floats)."
        )
    if arr.ndim < 2 or arr.shape[0] == 0 or int(np.prod(arr.shape[1:])) == 0:
        raise UserInputError(
            f"The features of {source} have shape {arr.shape}: expected [rows, features...] "
            "with at least one row and one feature."
        )
    if n_rows is not None and arr.shape[0] != n_rows:
        raise UserInputError(
            f"{source} has {arr.shape[0]} feature rows but {n_rows} labels: they must match."
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    check_finite(out, source=source)
    return out


def nonfinite_rows(x: np.ndarray) -> np.ndarray:
    """A boolean mask of the rows of ``x`` (``[n, ...]``) holding NaN or +-inf anywhere."""
    return ~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)


def check_finite(
    x: np.ndarray,
    *,
    source: str,
    row_ids: np.ndarray | None = None,
    row_label: str = "id",
) -> None:
    """Raise UserInputError if ``x`` (float, ``[n, ...]``) holds NaN or +-inf anywhere.

    The message names the first offending row (``row_label`` and its value in ``row_ids``
    when given, else its position) and how many rows are affected. Values too large for
    float32 show up as infinity.
    """
    bad = nonfinite_rows(x)
    if bad.any():
        ids = row_ids[bad] if row_ids is not None else np.flatnonzero(bad)
        raise_nonfinite(
            source, int(bad.sum()), int(ids.min()), row_label if row_ids is not None else "row"
        )


def raise_nonfinite(source: str, count: int, first: int, row_label: str = "id") -> None:
    """Raise the UserInputError for ``count`` rows with NaN/inf, the lowest being ``first``."""
    raise UserInputError(
        f"{source} has {count} row(s) with NaN or infinite features (first: {row_label} "
        f"{first}); float32 features must be finite: drop or impute those rows."
    )


def infer_labels(values: Sequence[object] | np.ndarray, *, source: str) -> tuple[np.ndarray, str]:
    """Classify labels as integers or text and return ``(labels, sql_type)``.

    Integer labels (integer or boolean dtype, integral floats, or strings that all parse
    as base-10 integers, ``"2.0"`` included, as from npz) come back as int64 with type ``integer`` (``bigint`` when a value
    does not fit 32 bits); anything else comes back as str with type ``text``. Raises
    UserInputError for missing labels (None, NaN, empty string).
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise UserInputError(f"The labels of {source} have shape {arr.shape}: expected [rows].")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        ints = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise UserInputError(f"{source} has NaN or infinite labels: every row needs a label.")
        if not np.array_equal(arr, np.round(arr)):
            raise UserInputError(
                f"The labels of {source} are non-integral floats: class labels must be "
                "integers or text (this is classification, not regression)."
            )
        ints = arr.astype(np.int64)
    else:
        text = [_label_text(v) for v in arr.tolist()]
        if any(t == "" for t in text):
            raise UserInputError(f"{source} has empty labels: every row needs a label.")
        # A strict ASCII pattern: Python's int() would also take "1_000" or non-ASCII digits.
        matches = [_INT_RE.fullmatch(t) for t in text]
        if not all(matches):
            return np.array(text, dtype=object), "text"
        try:
            ints = np.array([int(m[1]) for m in matches if m], dtype=np.int64)
        except OverflowError:
            return np.array(text, dtype=object), "text"
    fits32 = ints.size == 0 or (ints.min() >= -(2**31) and ints.max() < 2**31)
    return ints, "integer" if fits32 else "bigint"


def _label_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value).strip()


def check_classes(class_values: Sequence[object], *, source: str, column: str) -> None:
    """Raise UserInputError unless there are at least two distinct classes."""
    if len(class_values) < 2:
        raise UserInputError(
            f"The label column {column!r} of {source} has {len(class_values)} distinct "
            f"value(s) ({list(class_values)!r}): classification needs at least two classes. "
            "Check --label-column."
        )
