"""Reading a CSV file for ``automl data load csv:PATH``: its header, labels and features.

:func:`parse_csv` reads the file line by line and checks every row as it goes, naming
the line of the first bad one; ``sources.read_csv`` checks the labels and makes the
``SourceData``. Features are converted in blocks of ``_CSV_BLOCK`` rows, one vectorised
conversion per block; only a failing block is read again value by value, to name its line.
The header's feature columns are kept by name (``feature_names``), so a model trained on
the file can pick a DataFrame's columns by name when it scores (``data.feature_names``).
A file of rows to score has no label column (``label_column=None``, ``--no-label``):
every column is a feature.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from automl_core.data.validate import check_finite
from automl_core.errors import UserInputError

log = logging.getLogger(__name__)

_CSV_BLOCK = 8192
# Columns of every loaded table that the loader fills itself (see parse_csv).
_LOADER_COLUMNS = ("id", "split")


@dataclass(frozen=True)
class CsvRows:
    """The rows of a CSV file as read: features checked, labels still text."""

    # The feature columns' names in file order (the label column left out); None when
    # two of them share a name or one has none: a DataFrame is then read by position.
    feature_names: tuple[str, ...] | None
    x: np.ndarray  # float32 [n, number of feature columns], finite
    labels: np.ndarray | None  # object [n]: each row's label field, stripped; None: no label
    lines: list[int]  # the file line of each row, for messages


def parse_csv(path: Path, *, label_column: str | None, source: str) -> CsvRows:
    """Read the existing CSV file ``path`` (``source`` names it in messages); with
    ``label_column`` None the file has no label column: every column is a feature.

    Raises UserInputError for a file that is not UTF-8 or not CSV, a missing header or
    label column, a column named ``id`` or ``split`` (the loader makes those), no data
    rows, and for a bad row (wrong number of fields; a feature that is not a plain ASCII
    decimal number, NaN or infinity), naming its line. Labels are checked by the caller.
    """
    try:
        # utf-8-sig: Excel and PowerShell start UTF-8 files with a byte-order mark, which
        # plain utf-8 would glue to the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise UserInputError(f"{source} is empty: expected a header row and data rows.")
            header = [h.strip() for h in header]
            if label_column is None:  # rows to score: every column is a feature
                _check_delimiter(header, source)
                li = -1
            else:
                li = _label_index(header, label_column, source)
            _check_loader_columns(header, li, source)
            _refuse_index_column(header, li, source)
            blocks: list[np.ndarray] = []
            labels: list[str] = []
            lines: list[int] = []
            block: list[list[str]] = []
            for row in reader:
                if not row:
                    continue  # blank line
                if len(row) != len(header):
                    raise UserInputError(
                        f"{source} line {reader.line_num}: {len(row)} fields, but the header "
                        f"has {len(header)}; fix or remove that row."
                    )
                if li >= 0:  # an empty label or "NA" is refused by infer_labels
                    labels.append(row.pop(li).strip())
                joined = "".join(row)
                if "_" in joined or not joined.isascii():
                    _refuse_number_form(row, reader.line_num, source)
                lines.append(reader.line_num)
                block.append(row)
                if len(block) >= _CSV_BLOCK:
                    blocks.append(_csv_block(block, lines[-len(block) :], source))
                    block = []
            if block:
                blocks.append(_csv_block(block, lines[-len(block) :], source))
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{source} is not UTF-8 text ({exc.reason}).") from None
    except csv.Error as exc:
        raise UserInputError(f"{source} is not a valid CSV file ({exc}).") from None
    if not blocks:
        raise UserInputError(f"{source} has a header but no data rows.")
    x = np.concatenate(blocks)
    check_finite(x, source=source, row_ids=np.asarray(lines), row_label="line")
    names = [name for i, name in enumerate(header) if i != li]
    label_values = np.array(labels, dtype=object) if li >= 0 else None
    return CsvRows(_usable_names(names, source), x, label_values, lines)


def _usable_names(names: list[str], source: str) -> tuple[str, ...] | None:
    """``names`` when they tell every feature column apart; else None, with a warning:
    scoring a DataFrame by column name needs one distinct name per feature."""
    blank = [i + 1 for i, name in enumerate(names) if not name]
    repeated = sorted(name for name, n in Counter(names).items() if name and n > 1)
    if not blank and not repeated:
        return tuple(names)
    why = (
        f"columns share the name(s) {repeated[:5]}"
        if repeated
        else f"feature column(s) {blank[:5]} (counting features from 1) have no name"
    )
    log.warning(
        "%s: %s, so the features are kept without their names: an exported model then "
        "takes a DataFrame's columns by position, in the file's order; give every column "
        "its own name to have them matched by name",
        source,
        why,
    )
    return None


# pandas names an index column "" (DataFrame.to_csv) or, read and written again,
# "Unnamed: 0": row numbers, which would be trained on as a feature.
_PANDAS_INDEX = re.compile(r"Unnamed: \d+")


def _refuse_index_column(header: list[str], li: int, source: str) -> None:
    """Refuse a first column without a name, or one named ``Unnamed: N``: pandas' index,
    written by ``DataFrame.to_csv()`` without ``index=False``."""
    for i, name in enumerate(header):
        if i != li and ((i == 0 and not name) or _PANDAS_INDEX.fullmatch(name)):
            shown = repr(name) if name else "no name"
            raise UserInputError(
                f"{source}: column {i + 1} has {shown}, as pandas writes its index "
                "(DataFrame.to_csv() without index=False): its row numbers would be trained "
                "on as a feature. Save the file with to_csv(index=False), drop that column, "
                "or name it if it is a feature."
            )


def _check_loader_columns(header: list[str], li: int, source: str) -> None:
    """Refuse a feature column named ``id`` or ``split`` (any case): it would become a
    feature, or fail as one, while the loader writes its own ids and split."""
    for i, name in enumerate(header):
        if i != li and name.lower() in _LOADER_COLUMNS:
            raise UserInputError(
                f"{source} has a column {name!r} (column {i + 1}), but `automl data load` "
                "assigns the row ids itself, in file order (0..n-1), and the split itself "
                "(a labelled CSV's rows are 'train'; `automl data prepare` holds out "
                "validation rows), "
                "so it would be read as a feature: drop or rename that column."
            )


def _refuse_number_form(row: list[str], line: int, source: str) -> None:
    """Refuse digit separators and non-ASCII digits, which float() takes but labels do not."""
    for value in row:
        if "_" in value or not value.isascii():
            raise UserInputError(
                f"{source} line {line}: the feature value {value!r} is not a plain number: "
                "write numbers with ASCII digits and no separators (1000, not 1_000); fix or "
                "remove that row."
            )


def _label_index(header: list[str], label_column: str, source: str) -> int:
    """The position of ``label_column`` in ``header``; UserInputError when it is missing
    or repeated, saying so when the file is not comma-separated at all."""
    count = header.count(label_column)
    if count == 1:
        return header.index(label_column)
    if count > 1:
        positions = [i + 1 for i, name in enumerate(header) if name == label_column]
        raise UserInputError(
            f"{source} has {count} columns named {label_column!r} (columns "
            f"{', '.join(map(str, positions))}): rename all but one, or pass "
            "--label-column NAME for the label column."
        )
    _check_delimiter(header, source)
    raise UserInputError(
        f"{source} has no label column {label_column!r} (columns: {header}); "
        "pass --label-column NAME, or --no-label for rows without labels, to score with "
        "`automl predict`."
    )


def _check_delimiter(header: list[str], source: str) -> None:
    """Refuse a header of one column that holds a semicolon, tab or pipe: the file is
    not comma-separated at all."""
    if len(header) == 1:
        for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delimiter in header[0]:
                raise UserInputError(
                    f"{source} is {name}-separated (its header is {header[0]!r}), but CSV "
                    f"files are read comma-separated: save it with commas, e.g. "
                    f"pandas.read_csv(path, sep={delimiter!r}).to_csv(new_path, index=False)"
                    " (with decimal=',' if its numbers use decimal commas)."
                )


def _csv_block(block: list[list[str]], lines: list[int], source: str) -> np.ndarray:
    """Convert a block of feature strings to float32, naming the line of the first bad value."""
    try:
        return np.array(block, dtype=np.float64).astype(np.float32)
    except ValueError:
        for row, line in zip(block, lines, strict=True):
            for value in row:
                try:
                    float(value)
                except ValueError:
                    raise UserInputError(
                        f"{source} line {line}: the feature value {value!r} is not a number; "
                        "fix or remove that row."
                    ) from None
        raise
