"""Checks on user input to the data commands: table names, feature arrays and labels.

Every check raises :class:`~automl_core.errors.UserInputError` naming the input and the
fix, and runs before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

import numpy as np

from automl_core.errors import UserInputError

# PostgreSQL truncates identifiers at 63 bytes; an ASCII-only pattern keeps bytes == chars.
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# An integer, or an integral decimal ("2.0", "2."), as CSV files write class numbers.
_INT_RE = re.compile(r"([+-]?[0-9]+)(?:\.0*)?")
# Any plain decimal number, ASCII only: Python's float() also takes "1_000" and "١٢".
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Labels that spreadsheets and pandas write for "no value" (compared case-folded).
MISSING_LABELS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_MISSING_LEN = max(map(len, MISSING_LABELS))  # longer labels skip the case-folding
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A label column with more classes than half its rows is an id or a regression target;
# below this many rows a small example may well have one row per class.
REPEAT_CHECK_ROWS = 20
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
    (with ``label``) ``label`` is missing (saying how to score rows without one), when
    ``id`` is not an integer type (predictions are keyed by it) or when ``features`` is
    not an array of numbers (``numeric[]`` included): checked up front, so that no row is
    converted, scored or written first.
    """
    needed = ["id", "features", "label"] if label else ["id", "features"]
    if not set(needed) <= set(columns):
        wants = "id, features and label" if label else "id and features (an array)"
        kind = " for labelled data" if label else ""
        unlabelled = ""
        if label and {"id", "features"} <= set(columns):
            unlabelled = (
                ": each row's label is what its prediction is checked against, and a table "
                "loaded with --no-label (rows to score) has none. Score such rows with "
                "`automl predict`, or load the labelled file without --no-label"
            )
        raise UserInputError(
            f"The table {table!r} has columns {sorted(columns)}, but needs {wants}, as "
            f"`automl data load` writes them{kind}{unlabelled}."
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
    if arr.dtype.kind not in "biuf":
        # Complex numbers and time deltas convert to float32 silently, losing the
        # imaginary part or the unit: only real numbers are features.
        raise UserInputError(
            f"The features of {source} have dtype {arr.dtype}, which is not numeric: store "
            "real numbers (booleans, integers or floats), not complex numbers, dates, time "
            "deltas or text."
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


def infer_labels(
    values: Sequence[object] | np.ndarray,
    *,
    source: str,
    where: Callable[[int], str] | None = None,
) -> tuple[np.ndarray, str]:
    """Classify labels ``[rows]`` as integers or text and return ``(labels, sql_type)``.

    Integer labels (boolean or integer dtype, integral floats, or strings that all parse
    as ASCII decimal numbers with integral values, ``"2.0"`` and ``"1e3"`` included) come
    back as int64 with type ``integer`` (``bigint`` when a value does not fit 32 bits);
    any other strings come back as str with type ``text``. ``where(i)`` names row ``i`` in
    messages (default ``"row i"``, counting from 0). Raises UserInputError for a missing
    label (None, NaN, empty or a marker such as ``NA``), non-integral numbers (a regression
    target), numbers outside int64, text with NUL characters or bytes that are not UTF-8,
    a dtype that is neither numbers nor text, and too few repeated labels
    (:func:`check_label_repeats`).
    """
    where = where or (lambda i: f"row {i}")
    arr = check_label_array(values, source=source)
    if arr.dtype.kind in "bi":
        ints = arr.astype(np.int64)
    elif arr.dtype.kind in "uf":
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise UserInputError(f"{source} has NaN or infinite labels: every row needs a label.")
        if not np.array_equal(arr, np.round(arr)):
            raise UserInputError(
                f"The labels of {source} are non-integral floats: class labels must be "
                "integers or text (this is classification, not regression)."
            )
        # astype would wrap uint64 >= 2**63 and make float values past int64 undefined.
        outside = (arr >= 2**63) | (arr < INT64_MIN)  # 2**63: float(INT64_MAX) rounds up
        if outside.any():
            _raise_outside_int64(source, where(int(np.argmax(outside))), arr[outside][0])
        ints = arr.astype(np.int64)
    else:
        text = _label_texts(arr, source=source, where=where)
        # Strict ASCII patterns: Python's int() and float() would also take "1_000".
        if not all(_NUMBER_RE.fullmatch(t) for t in text):
            out = np.array(text, dtype=object)
            check_label_repeats(out, source=source)
            return out, "text"
        ints = np.array([_text_int(t, i, source, where) for i, t in enumerate(text)], np.int64)
    check_label_repeats(ints, source=source)
    fits32 = ints.size == 0 or (ints.min() >= -(2**31) and ints.max() < 2**31)
    return ints, "integer" if fits32 else "bigint"


def check_label_array(values: object, *, source: str) -> np.ndarray:
    """``values`` as an array ``[rows]`` of booleans, numbers or text; UserInputError for
    another shape (a 0-d or 2-d ``y``) or dtype (complex, dates, time deltas)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise UserInputError(
            f"The labels of {source} have shape {arr.shape}: expected [rows], one label per "
            "row of the features (e.g. numpy.savez(path, x=features, y=labels))."
        )
    if arr.dtype.kind not in "biufUSO":
        raise UserInputError(
            f"The labels of {source} have dtype {arr.dtype}: class labels must be integers or text."
        )
    return arr


def _label_texts(arr: np.ndarray, *, source: str, where: Callable[[int], str]) -> list[str]:
    """Labels as stripped str, refusing a missing one, NUL characters and undecodable bytes
    (PostgreSQL text can hold neither; COPY would fail midway)."""
    text = []
    for i, value in enumerate(arr.tolist()):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise UserInputError(
                    f"{source} {where(i)}: the label {value!r} is not UTF-8 text: store text "
                    "labels as str (numpy dtype 'U') or as UTF-8 encoded bytes."
                ) from None
        t = "" if value is None else str(value).strip()
        if len(t) <= _MISSING_LEN and t.casefold() in MISSING_LABELS:
            if not t:
                raise UserInputError(
                    f"{source} {where(i)}: the label is empty (empty labels are missing "
                    "values): every row needs a label; fill it in or drop that row."
                )
            raise UserInputError(
                f"{source} {where(i)}: the label {t!r} marks a missing value, not a class: "
                "every row needs a label; fill it in or drop that row."
            )
        if "\x00" in t or not (t.isascii() or _encodable(t)):
            raise UserInputError(
                f"{source} {where(i)}: the label {t!r} contains a NUL character or invalid "
                "Unicode, which PostgreSQL text cannot store: remove it."
            )
        text.append(t)
    return text


def _encodable(t: str) -> bool:
    try:
        t.encode("utf-8")  # fails on lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _text_int(t: str, i: int, source: str, where: Callable[[int], str]) -> int:
    """The integer a label matching ``_NUMBER_RE`` writes; UserInputError unless integral
    and within int64."""
    m = _INT_RE.fullmatch(t)
    if m and len(m[1]) <= 18:  # the common case, and 18 characters always fit int64
        return int(m[1])
    d = Decimal(m[1] if m else t)
    # Compared as Decimal before int(): "1e999999" would otherwise build a huge integer.
    if not INT64_MIN <= d <= INT64_MAX:
        _raise_outside_int64(source, where(i), t)
    if d != d.to_integral_value():
        raise UserInputError(
            f"The labels of {source} are non-integral floats (first: {t!r} at {where(i)}): "
            "class labels must be integers or text (this is classification, not regression)."
        )
    return int(d)


def _raise_outside_int64(source: str, where: str, value: object) -> None:
    shown = str(value) if len(str(value)) <= 40 else f"{str(value)[:40]}..."
    raise UserInputError(
        f"{source} {where}: the label {shown} is outside the 64-bit integer range "
        f"[{INT64_MIN}, {INT64_MAX}] that integer labels are stored in: renumber the classes "
        "(e.g. 0..k-1) or give them as text names."
    )


def check_label_repeats(labels: np.ndarray, *, source: str) -> None:
    """Refuse labels ``[rows]`` with more distinct values than half the rows (from
    ``REPEAT_CHECK_ROWS`` rows on): an id column or a regression target, not classes."""
    n = int(labels.shape[0])
    if n < REPEAT_CHECK_ROWS:
        return
    k = len(set(labels.tolist()))
    if 2 * k > n:
        raise UserInputError(
            f"The labels of {source} have {k} distinct values in {n} rows: classification "
            "needs repeated labels (at most half as many classes as rows). This looks like "
            "an id or a continuous target: pick the column of class labels (--label-column "
            "NAME for csv:), or bin the target into classes."
        )


def check_classes(class_values: Sequence[object], *, source: str, column: str) -> None:
    """Raise UserInputError unless there are at least two distinct classes."""
    if len(class_values) < 2:
        raise UserInputError(
            f"The label column {column!r} of {source} has {len(class_values)} distinct "
            f"value(s) ({list(class_values)!r}): classification needs at least two classes. "
            "Check --label-column."
        )
