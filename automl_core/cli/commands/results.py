"""``automl leaderboard|export|predict|report``: the results of an experiment."""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager
from typing import Any

from automl_core.errors import UserInputError


def register(subparsers: Any) -> None:
    """Add the ``leaderboard``, ``export``, ``predict``, ``evaluate`` and ``report`` commands."""
    board = subparsers.add_parser(
        "leaderboard",
        help="list an experiment's trials, best first",
        description="Every trial of EXPERIMENT with its configuration, bracket, rung, epochs, "
        "final and best validation accuracy, the best epoch (the model export and predict "
        "use), training time and status; best validation accuracy first, ties by trial id.",
    )
    board.add_argument("experiment", metavar="EXPERIMENT")
    board.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    board.add_argument("--limit", type=int, metavar="N", help="show the best N trials only")
    board.set_defaults(handler=_leaderboard)

    export = subparsers.add_parser(
        "export",
        help="export the best model (weights and model card)",
        description="Write the best trial's state at its best epoch (model.safetensors) "
        "and model_card.json to a folder or s3://bucket/prefix (S3 credentials and "
        "endpoint from the AWS_* environment variables).",
    )
    export.add_argument("experiment", metavar="EXPERIMENT")
    export.add_argument("--to", required=True, metavar="TARGET", help="DIR or s3://bucket/prefix")
    export.set_defaults(handler=_export)

    predict = subparsers.add_parser(
        "predict",
        help="score a table with the best model",
        description="Score every row of TABLE (id and features, as `automl data load` writes "
        "them; `--no-label` for a CSV without labels) with the best model of EXPERIMENT, or "
        "an exported model given with --model, and write OUT (id, predicted, probability). "
        "A table loaded from a CSV is read by its column names when the model knows its "
        "own; otherwise features are read in order.",
    )
    predict.add_argument("experiment", nargs="?", metavar="EXPERIMENT")
    predict.add_argument("--model", metavar="TARGET", help="an export: DIR or s3://bucket/prefix")
    predict.add_argument("--table", required=True, metavar="TABLE", help="the table to score")
    predict.add_argument("--out-table", required=True, metavar="OUT", help="the table to create")
    predict.add_argument(
        "--batch-size", type=int, default=4096, metavar="N", help="rows per batch (default 4096)"
    )
    predict.add_argument("--replace", action="store_true", help="replace OUT if it exists")
    predict.set_defaults(handler=_predict)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a labelled table with the best model: accuracy, loss, confusion matrix",
        description="Score every row of TABLE (id, features, label, as `automl data load` "
        "writes labelled data; use rows the search never saw) with the best model of "
        "EXPERIMENT; print held-out accuracy, mean cross-entropy and the confusion matrix, "
        "and keep them in automl.evaluations (shown by `automl report`).",
    )
    evaluate.add_argument("experiment", metavar="EXPERIMENT")
    evaluate.add_argument("--table", required=True, metavar="TABLE", help="the labelled table")
    evaluate.add_argument(
        "--batch-size", type=int, default=4096, metavar="N", help="rows per batch (default 4096)"
    )
    evaluate.add_argument(
        "--split",
        metavar="SPLIT",
        help="only the rows of this split (e.g. test). `automl data prepare` validates on a "
        "source's test split unless given --validation-fraction: only then are they held out",
    )
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(handler=_evaluate)

    report = subparsers.add_parser(
        "report",
        help="write an HTML report with plots",
        description="Write index.html and PNG plots of EXPERIMENT into DIR.",
    )
    report.add_argument("experiment", metavar="EXPERIMENT")
    report.add_argument("--out", required=True, metavar="DIR", help="the report folder")
    report.add_argument("--top", type=int, default=5, metavar="K", help="learning curves of K")
    report.set_defaults(handler=_report)


def _connection(experiment: str | None) -> AbstractContextManager[Any]:
    """A connection for a command on ``experiment``: the schema (and its views) up to
    date where the database has one; nothing is created for a missing experiment
    (``connection_to_read``). None (predict with an exported model): a plain connection,
    as scoring needs no automl schema. Imported late so that ``automl --help`` does not
    load psycopg2."""
    if experiment is None:
        from contextlib import closing

        from automl_core.store.connection import connect

        return closing(connect())
    from automl_core.experiment.api import connection_to_read

    return connection_to_read(experiment)


def _leaderboard(args: argparse.Namespace) -> int:
    from automl_core.report.leaderboard import format_table, leaderboard, to_json

    with _connection(args.experiment) as conn:
        df = leaderboard(conn, args.experiment, limit=args.limit)
    print(to_json(df) if args.json else format_table(df))
    return 0


def _export(args: argparse.Namespace) -> int:
    from automl_core.export import check_export_target, export_best

    check_export_target(args.to)  # a bad or taken target fails before connecting
    with _connection(args.experiment) as conn:
        card = export_best(conn, args.experiment, args.to)
    point = card["checkpoint"]
    metrics = card["metrics"]
    at_epoch = point["valid_accuracy"]
    print(
        f"exported trial {card['trial']['trial_id']} of {args.experiment} to {args.to}: "
        f"{point['kind']} checkpoint, epoch {point['epoch']}"
        + (f" (validation accuracy {at_epoch:.4f})" if at_epoch is not None else "")
        + f"; best {metrics['best_valid_accuracy']:.4f} at epoch {metrics['best_epoch']}"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from automl_core.data.validate import validate_table_name
    from automl_core.export import load_exported
    from automl_core.predict import predict_table

    if (args.experiment is None) == (args.model is None):
        raise UserInputError(
            "Give either an EXPERIMENT (its best model is used) or --model DIR|s3://..., "
            "not both and not neither."
        )
    # Names first: a typo should not cost a model download.
    validate_table_name(args.table, what="source table name")
    validate_table_name(args.out_table, what="output table name")
    model = load_exported(args.model) if args.model else args.experiment
    with _connection(args.experiment) as conn:
        n = predict_table(
            conn,
            source_table=args.table,
            out_table=args.out_table,
            model=model,
            batch_size=args.batch_size,
            replace=args.replace,
        )
    print(f"wrote {n} predictions from {args.table} to {args.out_table}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from automl_core.evaluate import evaluate_table, format_evaluation

    with _connection(args.experiment) as conn:
        result = evaluate_table(
            conn, args.experiment, args.table, split=args.split, batch_size=args.batch_size
        )
    if args.json:
        print(json.dumps(dataclasses.asdict(result), allow_nan=False))
    else:
        print(format_evaluation(result))
    return 0


def _report(args: argparse.Namespace) -> int:
    from automl_core.report.html import check_report_dir, write_report

    check_report_dir(args.out)  # a bad or taken folder fails before connecting
    with _connection(args.experiment) as conn:
        index = write_report(conn, args.experiment, args.out, top_k=args.top)
    print(f"wrote {index}")
    return 0
