"""`automl run`: a whole search, end to end, without Airflow."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from automl_core.errors import UserInputError


def register(sub: argparse._SubParsersAction) -> None:
    from automl_core.search.methods import get_method, method_names

    titles = [get_method(name).title for name in method_names()]
    p = sub.add_parser(
        "run",
        help="run a search end to end on prepared data",
        description=f"Run {', '.join(titles[:-1])} or {titles[-1]} search on a prepared data "
        "set with model hopper parallelism, then print the leaderboard.",
    )
    p.add_argument("--data", required=True, help="a data set prepared with `automl data prepare`")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--space", type=Path, help="search-space file (YAML or JSON)")
    source.add_argument(
        "--narrow-from",
        metavar="EXPERIMENT",
        help="search EXPERIMENT's space narrowed to its --top trials (see `automl space "
        "narrow`); the new experiment records it as its parent, and Hyperopt starts from "
        "its results",
    )
    p.add_argument("--top", type=int, help="with --narrow-from: how many best trials (default 5)")
    p.add_argument("--method", required=True, choices=method_names())
    add_knob_options(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local Dask workers (default: partitions)")
    where.add_argument("--cluster", help="address of an existing Dask scheduler")
    p.add_argument("--name", help="experiment name (rerun a name to resume it)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds sampling, initial weights, shuffles and each model's order of partitions: "
        "with --visit-order seeded (the default) the same seed, data and space repeat every "
        "metric on CPU workers, however many workers and whatever their timing",
    )
    p.add_argument(
        "--visit-order",
        choices=["seeded", "free"],
        default="seeded",
        help="seeded: each model visits the partitions in an order drawn from the seed "
        "(repeatable); free: any free worker takes any model (busier workers, results depend "
        "on timing; see benchmarks/RESULTS.md for the cost)",
    )
    p.add_argument("--export", dest="export_to", help="export the best model to DIR or s3://...")
    p.add_argument("--report", type=Path, help="write the HTML report to this folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from automl_core.experiment import SearchRequest, finalize, run_search
    from automl_core.experiment.request import check_option_limits
    from automl_core.space import SearchSpace

    check_option_limits(vars(args))  # named as typed (--R), before anything else
    if args.top is not None and not args.narrow_from:
        raise UserInputError("--top goes with --narrow-from EXPERIMENT; add it or drop --top.")
    if args.space is not None and not args.space.is_file():
        raise UserInputError(f"--space {args.space}: no such file; give a YAML or JSON space file.")
    space = SearchSpace.from_file(args.space).to_dict() if args.space is not None else {}
    request = SearchRequest.with_budget(
        knob_values(args),
        dataset=args.data,
        space=space,
        method=args.method,
        name=args.name,
        seed=args.seed,
        workers=args.workers,
        cluster=args.cluster,
        visit_order=args.visit_order,
    )
    _check_outputs(args)
    if args.narrow_from:
        request = _narrowed(request, args.narrow_from, args.top)
    from automl_core.experiment.stopping import stop_on_signals

    # SIGINT/SIGTERM stop the engine cleanly; `automl` prints how to resume (cli.main).
    with stop_on_signals() as stop:
        name = run_search(request, progress=not args.no_progress, stop=stop)
    if args.export_to or args.report:
        finalize(name, export_to=args.export_to, report_dir=args.report)
    _print_leaderboard(name)
    print(f"experiment: {name}")
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse a bad --export target or --report folder now, not after the search trained:
    the same checks export and report make before they write."""
    if args.export_to:
        from automl_core.export import check_export_target

        check_export_target(args.export_to)
    if args.report:
        from automl_core.report.html import check_report_dir

        check_report_dir(args.report)


def add_knob_options(p: argparse.ArgumentParser) -> None:
    """One option per registered budget knob (``--batch-size`` for ``batch_size``), its
    default and help from the method registry; the help names the methods using it."""
    from automl_core.search.methods import all_knobs, knob_methods

    for knob in all_knobs():
        methods = knob_methods(knob.name)
        where = f"{methods[0]}: {knob.help}" if len(methods) == 1 else None
        p.add_argument(
            "--" + knob.name.replace("_", "-"),
            dest=knob.name,
            type=int,
            default=knob.default,
            help=where or f"{knob.help} ({'/'.join(methods)})",
        )


def knob_values(args: argparse.Namespace) -> dict[str, int | None]:
    """The value of every registered knob in ``args``."""
    from automl_core.search.methods import all_knobs

    return {k.name: getattr(args, k.name) for k in all_knobs()}


def _narrowed(request: Any, parent: str, top: int | None) -> Any:
    """The request on ``parent``'s narrowed space; prints what changed."""
    from automl_core.experiment.narrowing import narrow_request
    from automl_core.space.narrow import DEFAULT_TOP

    request, narrowed = narrow_request(request, parent, top=top or DEFAULT_TOP)
    if narrowed is None:
        print(f"resuming {request.experiment_name()}, narrowed from {parent} before")
    else:
        print("\n".join([narrowed.summary(), *(str(c) for c in narrowed.changes)]))
    return request


def _print_leaderboard(name: str) -> None:
    from automl_core.report.leaderboard import format_table, leaderboard
    from automl_core.store.connection import connect

    conn = connect()
    try:
        board = leaderboard(conn, name)
    finally:
        conn.close()
    print(format_table(board.head(SHOWN_TRIALS)))
    print(trial_summary(name, board))


#: Trials ``automl run`` lists at its end; ``automl leaderboard`` lists them all.
SHOWN_TRIALS = 10


def trial_summary(name: str, board: Any) -> str:
    """One line under the run's leaderboard: the trials by status and, when some failed,
    the first one's error (they are easy to miss in a top-10 table), e.g.
    ``17 trials: 11 completed, 6 failed (trial 3: ...); all: automl leaderboard hb1``."""
    counts = board["status"].value_counts()
    parts = [f"{int(counts[s])} {s}" for s in ("completed", "stopped", "failed") if s in counts]
    others = len(board) - sum(int(counts.get(s, 0)) for s in ("completed", "stopped", "failed"))
    parts += [f"{others} not trained"] if others else []
    line = f"{len(board)} trial{'s' if len(board) != 1 else ''}: {', '.join(parts) or 'none'}"
    failed = board[board["status"] == "failed"]
    if len(failed):
        first = failed.sort_values("trial_id").iloc[0]
        error = " ".join(str(first["error"] or "no error recorded").split())
        line += f" (trial {int(first['trial_id'])}: {error[:200]})"
    if len(failed) or len(board) > SHOWN_TRIALS:
        line += f"; all: automl leaderboard {name}"
    return line
