"""The ``automl`` command.

Subcommands live in ``automl_core.cli.commands``: every module there exposes
``register(subparsers)``. They are discovered, so adding a command touches one file.
Command modules import heavy libraries (torch, dask) inside their handlers only, so
``automl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import shlex
import sys

from automl_core.cli import commands
from automl_core.errors import UserInputError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="automl",
        description="Grid, random, Hyperband and Hyperopt search for deep nets on "
        "PostgreSQL/Greenplum data, trained with model hopper parallelism.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


# Exit status of a run that lost its database (sysexits' EX_TEMPFAIL: try again later).
EXIT_DATABASE_LOST = 75


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments); its exit status.

    Output piped into a reader that stops early (``automl ... | head``) ends the command
    with status 1 and no traceback, as the Python docs' "Note on SIGPIPE" advises.
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe raises here, inside the try
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at devnull so that this cannot
        # raise a second time, outside any handler.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Dask's own INFO lines (cluster start and stop, with a traceback when a comm closes
    # as the cluster stops) drown the per-epoch lines. Dask sets the levels of its
    # loggers from its config when it is imported, after this: the config must say it.
    if not args.verbose:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    for noisy in ("distributed", "bokeh", "tornado"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        result = args.handler(args)
    except UserInputError as exc:
        # As raised: messages that quote a library's text flatten it themselves, and an
        # EmbeddedServerError ends with the server log's last lines on purpose.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (Exception, KeyboardInterrupt) as exc:
        code = _stopped(exc, argv)
        if code is None:
            raise
        return code
    return int(result or 0)


def _stopped(exc: BaseException, argv: list[str]) -> int | None:
    """One line and an exit status for a run that was stopped or lost its database.

    None for any other exception (a bug: its traceback is worth seeing).
    """
    import psycopg2

    from automl_core.experiment.stopping import EngineInterrupted
    from automl_core.store.connection import DatabaseLostError

    if isinstance(exc, EngineInterrupted):
        print(f"interrupted: {exc}; resume with: {resume_command(argv, exc.name)}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        print("interrupted: stopped at once; rerun the command to resume", file=sys.stderr)
        return 130
    if isinstance(exc, DatabaseLostError):
        then = (
            f"experiment {exc.experiment!r} keeps every epoch it saved: once the database is "
            f"back, resume with: {resume_command(argv, exc.experiment)}"
            if exc.experiment
            else "check the server, then run the command again"
        )
        print(f"error: {exc}; {then}", file=sys.stderr)
        return EXIT_DATABASE_LOST
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        # "connection already closed" (a rollback on the dead connection) hides the cause.
        cause = exc.__context__ if isinstance(exc.__context__, psycopg2.Error) else exc
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(exc).__name__
        print(
            f"error: the database connection failed: {reason}; check the server, then run "
            "the command again (`automl db status` shows which database is in use)",
            file=sys.stderr,
        )
        return EXIT_DATABASE_LOST
    return None


def resume_command(argv: list[str], name: str) -> str:
    """The command line ``argv`` with ``--name name`` (set or replaced), as typed in a shell."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--name" and i + 1 < len(args):
            args[i + 1] = name
            break
        if arg.startswith("--name="):
            args[i] = f"--name={name}"
            break
    else:
        args += ["--name", name]
    return "automl " + shlex.join(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
