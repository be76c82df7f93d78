"""``automl data load|prepare|info``: sources into tables, tables into partitions."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``data`` command group to the ``automl`` parser."""
    from automl_core.data.packing import NORMALIZE_CHOICES

    data = subparsers.add_parser(
        "data",
        help="load data into a table and pack it into partitions",
        description="Load a source into a table, then pack it into P partitions for training.",
    )
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    load = actions.add_parser(
        "load",
        help="load a source into a table",
        description="Load SOURCE into table NAME (id, features real[], label, split); with "
        "--no-label, a CSV file of rows to score into (id, features real[]).",
    )
    load.add_argument(
        "source",
        metavar="SOURCE",
        help="digits | signals (built-in 1-d signals) | csv:PATH | npz:PATH (arrays x, y[, x_test, y_test]) | cifar10:DIR",
    )
    load.add_argument("--table", required=True, metavar="NAME", help="the table to create")
    load.add_argument(
        "--label-column", metavar="COL", help="csv: sources only: the label column (default: label)"
    )
    load.add_argument(
        "--no-label",
        action="store_true",
        help="csv: sources only: the file has no label column, every column is a feature: "
        "rows to score with `automl predict`, not to train on",
    )
    load.add_argument("--replace", action="store_true", help="replace the table if it exists")
    load.set_defaults(handler=_load)

    prepare = actions.add_parser(
        "prepare",
        help="pack a loaded table into partitions",
        description="Shuffle, normalise and pack table NAME into NAME_packed with P partitions "
        "and record it in automl.datasets. Re-running replaces both.",
    )
    prepare.add_argument("name", metavar="NAME", help="the source table (and dataset name)")
    prepare.add_argument(
        "--partitions",
        type=int,
        metavar="P",
        help="number of partitions (workers); required on PostgreSQL, default on "
        "Greenplum: the number of segments",
    )
    prepare.add_argument(
        "--validation-fraction",
        type=float,
        metavar="F",
        help="hold out this fraction of train rows, stratified (default: the source's test "
        "split if it has one, else 0.2)",
    )
    prepare.add_argument("--seed", type=int, default=0, help="shuffle seed (default: 0)")
    prepare.add_argument(
        "--buffer-size", type=int, metavar="B", help="rows per buffer (default: ~16 MiB buffers)"
    )
    prepare.add_argument(
        "--label-column", default="label", metavar="COL", help="label column (default: label)"
    )
    prepare.add_argument(
        "--normalize",
        choices=NORMALIZE_CHOICES,
        default="auto",
        help="per-feature: standardise each feature with its own mean and std (as "
        "scikit-learn's StandardScaler); global: one mean and std over all values (keeps "
        "relative scales between pixels or time steps); auto (default): the kind the data "
        "set was packed with before, else per-feature for a CSV source's columns and "
        "global for array features and the built-in data sets",
    )
    prepare.set_defaults(handler=_prepare)

    info = actions.add_parser("info", help="show a prepared dataset as JSON")
    info.add_argument("name", metavar="NAME")
    info.set_defaults(handler=_info)


def _load(args: argparse.Namespace) -> int:
    from automl_core.data.load import load_source
    from automl_core.data.sources import read_source
    from automl_core.data.validate import packed_table_name, validate_output_table
    from automl_core.errors import UserInputError
    from automl_core.store.connection import connect

    # All before reading a large file.
    validate_output_table(args.table, option="--table")
    try:
        packed_table_name(args.table)  # the limit prepare applies, checked at load
    except UserInputError as exc:
        raise UserInputError(
            f"The value of --table is {args.table!r}: it could be loaded but never prepared. {exc}"
        ) from None
    if args.label_column is not None and not args.source.startswith("csv:"):
        raise UserInputError(
            f"--label-column applies to csv: sources only, but the source is {args.source!r} "
            "(its labels are fixed): leave --label-column out."
        )
    if args.no_label and args.label_column is not None:
        raise UserInputError(
            f"--no-label says the file has no label column, but --label-column names one "
            f"({args.label_column!r}): leave out --label-column to load rows to score, or "
            "--no-label to load labelled rows."
        )
    data = read_source(
        args.source, label_column=args.label_column or "label", labeled=not args.no_label
    )
    conn = connect()
    try:
        result = load_source(conn, data, args.table, replace=args.replace)
    finally:
        conn.close()
    if result.label_type is None:
        rows, labels = f"{result.n_rows} rows to score", "no labels"
    else:
        rows = ", ".join(f"{n} {split}" for split, n in result.rows.items()) + " rows"
        labels = f"{result.label_type} labels"
    mb = data.feature_bytes / 1e6
    print(
        f"{'replaced' if result.replaced else 'created'} table {result.table}: {rows}, "
        f"features {result.feature_shape}, {labels} ({mb:.1f} MB in {result.seconds:.2f} s)"
    )
    if result.label_type is None:
        print(f"score it with: automl predict EXPERIMENT --table {result.table} --out-table OUT")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from automl_core.data.packing import Normalization
    from automl_core.data.prepare import prepare_dataset
    from automl_core.experiment.request import check_option_limits
    from automl_core.store.connection import connect
    from automl_core.store.migrations import migrate

    check_option_limits({"partitions": args.partitions, "seed": args.seed})
    conn = connect()
    try:
        migrate(conn)
        info = prepare_dataset(
            conn,
            args.name,
            partitions=args.partitions,
            validation_fraction=args.validation_fraction,
            seed=args.seed,
            buffer_size=args.buffer_size,
            label_column=args.label_column,
            normalize=args.normalize,
        )
    finally:
        conn.close()
    print(
        f"prepared {info.name} -> {info.packed_table}: {info.n_train} train / {info.n_valid} "
        f"valid rows in {info.partitions} partitions, {info.num_classes} classes, "
        f"features {info.feature_shape}, {Normalization.from_dict(info.normalization).kind} "
        "normalisation"
    )
    print(f"rows per partition: {json.dumps(info.rows_per_partition)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from automl_core.data.reader import dataset_info
    from automl_core.store.connection import connect

    conn = connect()
    try:
        info = dataset_info(conn, args.name)
    finally:
        conn.close()
    print(_json_lists_inline(asdict(info)))
    return 0


def _json_lists_inline(value: Any, depth: int = 0) -> str:
    """``value`` as JSON, objects indented two spaces a level and every list on one line:
    a wide CSV's per-feature statistics and column names would otherwise print an item
    a line (6,000 lines for 2,000 columns)."""
    if not isinstance(value, dict) or not value:
        return json.dumps(value, ensure_ascii=False)
    pad = "  " * (depth + 1)
    items = [
        f"{pad}{json.dumps(k, ensure_ascii=False)}: {_json_lists_inline(v, depth + 1)}"
        for k, v in value.items()
    ]
    return "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
