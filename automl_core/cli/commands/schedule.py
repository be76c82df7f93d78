"""``automl schedule``: print the schedule a search method would run, without running it."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``schedule hyperband`` to the ``automl`` parser."""
    parser = subparsers.add_parser(
        "schedule", help="print a search schedule (brackets, rungs, epochs)"
    )
    sub = parser.add_subparsers(dest="schedule_command", required=True, metavar="METHOD")
    hyperband = sub.add_parser(
        "hyperband",
        help="Hyperband's brackets and rungs for a budget R and cut factor eta",
        description="Print Hyperband's brackets (Li et al., JMLR 2018): for each bracket s, "
        "the rungs i with n_i configurations trained to r_i epochs, and the total epochs "
        "(promoted models resume from their checkpoint).",
    )
    hyperband.add_argument(
        "--R", dest="R", type=int, required=True, help="maximum epochs per configuration"
    )
    hyperband.add_argument("--eta", type=int, default=3, help="cut factor (default 3)")
    hyperband.add_argument(
        "--skip-last", type=int, default=0, help="drop the last K rungs of every bracket"
    )
    hyperband.add_argument("--json", action="store_true", help="print JSON")
    hyperband.set_defaults(handler=_hyperband)


def _hyperband(args: argparse.Namespace) -> int:
    from automl_core.search.hyperband import hyperband_schedule

    schedule = hyperband_schedule(args.R, args.eta, args.skip_last)
    if args.json:
        print(json.dumps({**schedule.to_dict(), "total_epochs": schedule.total_epochs}, indent=2))
        return 0
    print(
        f"Hyperband R={schedule.R} eta={schedule.eta} skip_last={schedule.skip_last} "
        f"s_max={schedule.s_max}"
    )
    for bracket in schedule.brackets:
        print(f"\nbracket s={bracket.s}  ({bracket.total_epochs} epochs)")
        print(f"  {'i':>3} {'n_i':>6} {'r_i':>6}")
        for rung in bracket.rungs:
            print(f"  {rung.i:>3} {rung.n_i:>6} {rung.r_i:>6}")
    print(f"\nconfigurations: {schedule.n_configs}")
    print(
        f"total epochs: {schedule.total_epochs} "
        f"(promoted models resume; {schedule.total_epochs_from_scratch} if retrained from scratch)"
    )
    return 0
