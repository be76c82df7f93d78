"""``automl space``: inspect search spaces, convert MADlib grids, narrow an experiment's."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from automl_core.errors import UserInputError


def register(subparsers: Any) -> None:
    """Add ``space sample``, ``space convert-madlib`` and ``space narrow`` to the parser."""
    parser = subparsers.add_parser(
        "space", help="sample search spaces, convert MADlib grids, narrow to the best trials"
    )
    sub = parser.add_subparsers(dest="space_command", required=True, metavar="ACTION")

    sample = sub.add_parser(
        "sample",
        help="print configurations of a space file (grid or random)",
        description="Print the configurations grid or random search would try. With "
        "--method grid the grid size comes first (on stderr with --json).",
    )
    sample.add_argument("space_file", metavar="SPACE_FILE", help="a YAML or JSON space file")
    sample.add_argument("--method", choices=("grid", "random"), required=True)
    sample.add_argument(
        "--n", type=int, default=None, help="random: how many (default 10); grid: print at most N"
    )
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--json", action="store_true", help="print one JSON list")
    sample.set_defaults(handler=_sample)

    convert = sub.add_parser(
        "convert-madlib",
        help="print the space file equivalent to MADlib's compile/fit params grids",
        description="Convert MADlib generate_model_configs grids (Python dict literals) to a "
        "space file. 'epochs' is kept, but a search's budget overrides it.",
    )
    convert.add_argument("--compile", required=True, help="compile_params_grid dict literal")
    convert.add_argument("--fit", required=True, help="fit_params_grid dict literal")
    convert.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    convert.set_defaults(handler=_convert_madlib)

    narrow = sub.add_parser(
        "narrow",
        help="print an experiment's space narrowed to its best trials",
        description="Narrow EXPERIMENT's search space to its top K trials by best-epoch "
        "validation accuracy: each choice keeps the values they used, each range shrinks to "
        "their span widened by a tenth of the original width on each side (on a log scale "
        "for log ranges), within the original bounds. Prints the space as YAML, the changes "
        "as comments above it. `automl run --narrow-from EXPERIMENT` searches it.",
    )
    narrow.add_argument("experiment", metavar="EXPERIMENT", help="the experiment to narrow")
    narrow.add_argument(
        "--top", type=int, default=None, help="how many of the best trials (default 5)"
    )
    narrow.add_argument(
        "--out", type=Path, help="also write the space to this .yaml, .yml or .json file"
    )
    narrow.set_defaults(handler=_narrow)


def _sample(args: argparse.Namespace) -> int:
    from itertools import islice

    import numpy as np

    from automl_core.experiment.request import check_option_limits
    from automl_core.search import RandomSearch
    from automl_core.search.distinct import distinct_grid, distinct_grid_size
    from automl_core.search.methods import MAX_GRID_SIZE
    from automl_core.space import SearchSpace

    check_option_limits({"n": args.n, "seed": args.seed})
    space = SearchSpace.from_file(args.space_file)
    configs: Iterator[dict[str, Any]]
    if args.method == "grid":
        listed = space.grid_size()  # the product of the counts, without enumerating
        if listed > MAX_GRID_SIZE and args.n is None:
            # Checked before walking: printing (or counting the repeats of) a grid of
            # 10**12 would run until killed, where `automl run` refuses it at once.
            raise UserInputError(
                f"The grid of {args.space_file} has {listed:,} configurations, but method "
                f"'grid' takes at most {MAX_GRID_SIZE:,}: give --n N to print its first N, "
                "list fewer values, or use --method random."
            )
        # Over the limit (with --n), repeats are not counted: that walks the whole grid.
        size_line = (
            f"grid size: {distinct_grid_size(space)}"
            if listed <= MAX_GRID_SIZE
            else f"grid size: {listed} (as listed; method 'grid' takes at most {MAX_GRID_SIZE:,})"
        )
        print(size_line, file=sys.stderr if args.json else sys.stdout)
        configs = islice(distinct_grid(space), args.n)
    else:
        search = RandomSearch(
            space, 10 if args.n is None else args.n, np.random.default_rng(args.seed)
        )
        configs = iter(search.ask, None)
    _print_configs(configs, as_json=args.json)
    return 0


def _print_configs(configs: Iterator[dict[str, Any]], *, as_json: bool) -> None:
    """One JSON object a line, or (``as_json``) the text of ``json.dumps(list(configs),
    indent=2)``, printed as the configurations come rather than held in a list."""
    if not as_json:
        for config in configs:
            print(json.dumps(config))
        return
    first = next(configs, None)
    if first is None:
        print("[]")
        return
    print("[")
    item = first
    for following in configs:
        print(textwrap.indent(json.dumps(item, indent=2), "  ") + ",")
        item = following
    print(textwrap.indent(json.dumps(item, indent=2), "  "))
    print("]")


def _convert_madlib(args: argparse.Namespace) -> int:
    from automl_core.space import space_from_madlib

    spec = space_from_madlib(args.compile, args.fit).to_dict()
    if args.json:
        print(json.dumps(spec, indent=2))
        return 0
    import yaml

    print(
        "# Converted from MADlib grids; 'epochs', if present, is overridden by the search budget."
    )
    print(yaml.safe_dump(spec, sort_keys=False, default_flow_style=None), end="")
    return 0


def _narrow(args: argparse.Namespace) -> int:
    from automl_core.experiment.narrowing import narrow_experiment
    from automl_core.experiment.request import check_option_limits
    from automl_core.space.narrow import DEFAULT_TOP

    check_option_limits({"top": args.top})
    # Expanded once: the check and the write must see the same path.
    out: Path | None = args.out.expanduser() if args.out is not None else None
    if out is not None and out.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise UserInputError(
            f"--out {out}: a space file ends in .yaml, .yml or .json; give such a name."
        )
    if out is not None:
        _check_out_file(out)
    narrowed = narrow_experiment(args.experiment, top=args.top or DEFAULT_TOP)
    header = [narrowed.summary(), *(str(change) for change in narrowed.changes)]
    if out is None:
        print(_space_text(narrowed.space, header, json_format=False), end="")
        return 0
    json_format = out.suffix.lower() == ".json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_space_text(narrowed.space, header, json_format=json_format), encoding="utf-8")
    print("\n".join(header))
    print(f"wrote {out}")
    return 0


# A YAML space file written by `space narrow` starts with its summary as a comment
# (NarrowedSpace.summary()): that line is how a file this command may overwrite is told
# from a user's. A JSON file cannot carry comments, so an existing one is never replaced.
_NARROWED_YAML_START = "# Narrowed "


def _check_out_file(out: Path) -> None:
    """Raise UserInputError, naming ``--out`` and the fix, unless the narrowed space may
    be written to ``out``: a new file in a folder that exists or can be created, or a
    YAML file an earlier `space narrow` wrote."""
    from automl_core.artifacts import check_local_folder

    if out.is_dir():
        raise UserInputError(f"--out {out} is a folder: give a file name (e.g. {out}/space.yaml).")
    check_local_folder(out.parent, f"--out {out}: the folder", "give a path in a folder.")
    if not (out.exists() or out.is_symlink()):
        return
    if out.suffix.lower() != ".json":
        try:
            with out.open(encoding="utf-8", errors="replace") as fh:
                if fh.readline().startswith(_NARROWED_YAML_START):
                    return
        except OSError:
            pass
    raise UserInputError(
        f"--out {out} exists and was not written by `automl space narrow`, so it would be "
        "replaced: give another file name, or remove the file if it may be replaced."
    )


def _space_text(space: dict[str, Any], header: list[str], *, json_format: bool) -> str:
    """The space as a file: YAML with ``header`` as comments, or plain JSON."""
    if json_format:
        return json.dumps(space, indent=2) + "\n"
    import yaml

    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(space, sort_keys=False, default_flow_style=None)
