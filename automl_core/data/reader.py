"""Reading packed data back: the dataset summary and one partition's rows.

Worker code calls :func:`read_partition` once per partition it holds; it streams only that
partition's buffers with a binary ``COPY ... TO STDOUT`` and copies each buffer straight
into preallocated arrays, so the peak memory is the partition itself plus one buffer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg2 import sql

from automl_core.data.feature_names import check_feature_names
from automl_core.data.packing import Normalization
from automl_core.data.pgcopy import TupleSink
from automl_core.data.tables import find_table
from automl_core.data.validate import validate_table_name
from automl_core.errors import UserInputError
from automl_core.store.repository import dataset_record, experiment_data, read_cursor

SPLITS = ("train", "valid")


@dataclass(frozen=True)
class DatasetInfo:
    """The summary of a prepared dataset (one row of ``automl.datasets``).

    ``class_values[i]`` is the label that class index ``i`` stands for (ints stay ints);
    ``rows_per_partition`` maps ``"train"``/``"valid"`` to one row count per partition;
    ``normalization`` is ``{"mean": m, "std": s}`` (``packing.Normalization.as_dict``):
    stored features are ``(x - m) / s``, with numbers ``m``, ``s`` over every value (global)
    or lists of one number per flattened feature (per feature); ``feature_names`` names
    each flattened feature, in order, for a data set loaded from a CSV file (its columns:
    ``automl_core.data.feature_names``), and is None for the others and for rows written
    before schema 10.
    """

    name: str
    feature_shape: tuple[int, ...]
    num_classes: int
    class_values: list[Any]
    partitions: int
    n_train: int
    n_valid: int
    rows_per_partition: dict[str, list[int]] = field(default_factory=dict)
    normalization: dict[str, float | list[float]] = field(default_factory=dict)
    source: str = ""
    source_table: str = ""
    packed_table: str = ""
    # The source table when it was packed: {"oid": ..., "rows": ...} (None before schema 9).
    source_state: dict[str, int] | None = None
    feature_names: tuple[str, ...] | None = None

    @classmethod
    def from_record(cls, values: Mapping[str, Any], *, kept_by: str | None = None) -> DatasetInfo:
        """From a row of ``automl.datasets``, or its copy in ``experiments.data`` kept by the
        experiment ``kept_by`` (either may predate ``source_state`` and ``feature_names``);
        raises UserInputError for statistics that are not numbers or lists of one per
        feature, and for feature names that are not one distinct string per feature."""
        state = values.get("source_state")
        n_features = math.prod(int(s) for s in values["feature_shape"])
        what = f"of data set {values['name']!r}"
        try:
            norm = Normalization.from_dict(
                values["normalization"], n_features=n_features, what=f"The normalization {what}"
            )
            names = check_feature_names(
                values.get("feature_names"), n_features, what=f"The feature_names {what}"
            )
        except ValueError as exc:
            fix = (
                f"the copy that experiment {kept_by!r} keeps in automl.experiments.data was "
                "changed or damaged: restore it from a backup (packing the data set again "
                "does not touch it)"
                if kept_by is not None
                else "its row in automl.datasets was changed or damaged: pack the data set "
                f"again (automl data prepare {values['name']} --partitions N)"
            )
            raise UserInputError(f"{exc}. {fix[0].upper()}{fix[1:]}.") from None
        return cls(
            name=values["name"],
            feature_shape=tuple(int(s) for s in values["feature_shape"]),
            num_classes=int(values["num_classes"]),
            class_values=list(values["class_values"]),
            partitions=int(values["partitions"]),
            n_train=int(values["n_train"]),
            n_valid=int(values["n_valid"]),
            rows_per_partition={
                k: [int(v) for v in vs] for k, vs in values["rows_per_partition"].items()
            },
            normalization=norm.as_dict(),
            source=values["source"] or "",
            source_table=values["source_table"] or "",
            packed_table=values["packed_table"] or "",
            source_state={k: int(v) for k, v in state.items()} if state else None,
            feature_names=names,
        )

    def record(self) -> dict[str, Any]:
        """The row of ``automl.datasets`` (JSON-ready): the inverse of :meth:`from_record`."""
        names = None if self.feature_names is None else list(self.feature_names)
        return {
            **dataclasses.asdict(self),
            "feature_shape": list(self.feature_shape),
            "feature_names": names,
        }


def dataset_info(conn: Any, name: str, *, require_packed: bool = True) -> DatasetInfo:
    """The summary of dataset ``name`` from ``automl.datasets``.

    Runs in the caller's open transaction if there is one; otherwise it ends the one it
    opened (``read_cursor``). Raises UserInputError naming the dataset and
    ``automl data prepare`` when it has not been prepared (or the schema does not exist
    yet), or (``require_packed``) its packed table is missing (dropped since).
    """
    validate_table_name(name, what="dataset name")
    values = dataset_record(conn, name)
    prepare = f"automl data prepare {name} --partitions P"
    if values is None:
        raise UserInputError(
            f"The dataset {name!r} has not been prepared: run `{prepare}` (after "
            f"`automl data load SOURCE --table {name}`)."
        )
    info = DatasetInfo.from_record(values)
    if not require_packed:
        return info
    with read_cursor(conn):  # ends the catalog read's transaction, as dataset_record does
        missing = find_table(conn, info.packed_table) is None
    if missing:
        raise UserInputError(
            f"The packed table {info.packed_table!r} of dataset {name!r} is missing (dropped "
            f"since it was prepared): run `{prepare}` again."
        )
    return info


def experiment_dataset(conn: Any, experiment: Any) -> DatasetInfo:
    """The data set as ``experiment`` (a repository ``Experiment``) was created on: the
    copy it keeps (schema 9), else, for an older one, the data set's row. Its packed
    table need not exist (an export reads no rows). Raises UserInputError as
    :func:`dataset_info` does."""
    kept = experiment_data(conn, experiment.id)
    if kept is not None:
        return DatasetInfo.from_record(kept, kept_by=experiment.name)
    return dataset_info(conn, experiment.dataset, require_packed=False)


def read_partition(
    conn: Any,
    name: str,
    partition: int,
    split: str = "train",
    *,
    info: DatasetInfo | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one partition of dataset ``name``: ``(x, y)``.

    ``x`` is float32 ``[n, *feature_shape]`` (already normalised), ``y`` int64 ``[n]`` class
    indices into ``info.class_values``; rows come in buffer order, i.e. the seeded shuffle
    of ``prepare``. Pass ``info`` to skip the summary query. Like :func:`dataset_info`, it
    leaves no transaction open that was not open before. Raises UserInputError for an
    unknown dataset, split or partition; RuntimeError when the packed table does not match
    its summary (it was changed after ``prepare``: run it again).
    """
    info = info if info is not None else dataset_info(conn, name)
    if split not in SPLITS:
        raise UserInputError(f"The split is {split!r}, but must be one of {SPLITS}.")
    if not 0 <= partition < info.partitions:
        raise UserInputError(
            f"The partition is {partition}, but dataset {name!r} has partitions "
            f"0..{info.partitions - 1}."
        )
    n = info.rows_per_partition[split][partition]
    row_values = int(np.prod(info.feature_shape))
    x = np.empty((n, row_values), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    filled = 0

    def take(fields: list[bytes | None]) -> None:
        nonlocal filled
        k_raw, xb, yb = fields
        if k_raw is None or xb is None or yb is None:
            raise RuntimeError(f"{info.packed_table} has a buffer with NULLs")
        k = int.from_bytes(k_raw, "big", signed=True)
        if filled + k > n or len(xb) != 4 * k * row_values or len(yb) != 8 * k:
            raise RuntimeError(_mismatch(info, split, partition))
        x[filled : filled + k] = np.frombuffer(xb, dtype="<f4").reshape(k, row_values)
        y[filled : filled + k] = np.frombuffer(yb, dtype="<i8")
        filled += k

    validate_table_name(info.packed_table, what="packed table name")
    query = sql.SQL(
        'COPY (SELECT n, x, y FROM {} WHERE split = %s AND "partition" = %s ORDER BY buffer) '
        "TO STDOUT WITH (FORMAT binary)"
    ).format(sql.Identifier(info.packed_table))
    with read_cursor(conn) as cur:
        # COPY takes no bind parameters: mogrify binds them client-side, quoted by psycopg2.
        statement = cur.mogrify(query, (split, partition)).decode()
        sink = TupleSink(take)
        cur.copy_expert(statement, sink)
    if filled != n or not sink.finished:
        raise RuntimeError(_mismatch(info, split, partition))
    return x.reshape(n, *info.feature_shape), y


def _mismatch(info: DatasetInfo, split: str, partition: int) -> str:
    return (
        f"{info.packed_table} does not match automl.datasets for {split} partition {partition} "
        f"(expected {info.rows_per_partition[split][partition]} rows): it was changed after "
        f"preparing; run `automl data prepare {info.name}` again."
    )


def normalize(x: np.ndarray, info: DatasetInfo, *, source: str | None = None) -> np.ndarray:
    """New raw rows ``x`` normalised as the packed data was, with the data set's global or
    per-feature statistics (``packing.Normalization.apply``): float32 ``[n, *feature_shape]``.

    ``x`` may be ``[n, *feature_shape]``, flat ``[n, prod(feature_shape)]``, or one row of
    either shape. Raises UserInputError when the rows are not numbers or do not match the
    dataset's features, naming ``source`` (e.g. ``"the table 'digits'"``) when given.
    """
    arr = np.asarray(x)
    what = f"The features of {source}" if source else f"Rows for dataset {info.name!r}"
    if arr.dtype.kind not in "biuf":
        raise UserInputError(f"{what} have dtype {arr.dtype}: features must be numbers.")
    shape = info.feature_shape
    size = int(np.prod(shape))
    if arr.shape in (shape, (size,)):
        arr = arr.reshape(1, size)  # one row
    elif arr.ndim >= 2 and (arr.shape[1:] == shape or arr.shape[1:] == (size,)):
        arr = arr.reshape(arr.shape[0], size)
    else:
        # A 1-D shape has one spelling; name both only when they differ.
        wanted = (
            f"[n, {size}]"
            if len(shape) == 1
            else f"[n, {', '.join(map(str, shape))}] or [n, {size}]"
        )
        if source is None:
            raise UserInputError(
                f"Rows of shape {arr.shape} do not match dataset {info.name!r}, whose "
                f"features have shape {shape}: pass an array of shape {wanted}."
            )
        got = arr.shape[1:] if arr.ndim >= 2 else arr.shape
        raise UserInputError(
            f"The features of {source} have shape {got} per row, which does not match "
            f"dataset {info.name!r} the model was trained on ({size} values per row, shape "
            f"{shape}): score rows with the same features as that data set."
        )
    norm = Normalization.from_dict(info.normalization, n_features=size)
    return norm.apply(arr).reshape(-1, *shape)
