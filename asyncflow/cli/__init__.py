"""The ``asyncflow`` command line (also ``python -m asyncflow``).

::

    asyncflow run TARGET [-p name=value ...] [--store PATH]
    asyncflow visualize TARGET [-o FILE]
    asyncflow serve TARGET [--host HOST] [--port PORT] [--store PATH | --no-store]
    asyncflow runs list|show|events|resume ... [--store PATH]

TARGET is ``path/to/file.py[:NAME]`` or ``package.module[:NAME]``. Exit status: 0 when the run
succeeded (or the command did its job), 1 when a run ended in any other state, 2 for a usage
error (unknown file, module, flow, parameter or run, named in the message), 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .._log import get_logger
from ..exceptions import AsyncflowError
from ._target import UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("main", "UsageError")

DEFAULT_STORE = "asyncflow.db"


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="asyncflow",
        description="Run, draw and serve asyncflow flows; read runs kept in a store.",
    )
    parser.add_argument("--version", action="version", version=f"asyncflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    target_help = "path/to/file.py[:NAME] or package.module[:NAME]"

    run = commands.add_parser("run", help="run a flow with live progress")
    run.add_argument("target", metavar="TARGET", help=target_help)
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter; VALUE is parsed as JSON when it parses, else taken as text",
    )
    run.add_argument("--store", metavar="PATH", help="journal the run in this SQLite store")
    run.add_argument(
        "--plain",
        action="store_true",
        help="print one line per transition even on a terminal (no live table)",
    )

    viz = commands.add_parser("visualize", help="draw a flow's graph with Graphviz")
    viz.add_argument("target", metavar="TARGET", help=target_help)
    viz.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write it; .svg, .png, .pdf, ... by extension (default: FLOW_NAME.svg)",
    )
    viz.add_argument("--horizontal", action="store_true", help="lay the graph out left to right")

    serve = commands.add_parser("serve", help="serve flows over HTTP with the run page")
    serve.add_argument("target", metavar="TARGET", help="a file or module; all its flows")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    where = serve.add_mutually_exclusive_group()
    where.add_argument(
        "--store", default=DEFAULT_STORE, metavar="PATH", help=f"default: ./{DEFAULT_STORE}"
    )
    where.add_argument(
        "--no-store", action="store_true", help="keep runs in memory only (lost at exit)"
    )

    runs = commands.add_parser("runs", help="list, show, follow and resume stored runs")
    what = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    store_help = f"the SQLite store (default: ./{DEFAULT_STORE})"
    listing = what.add_parser("list", help="runs, newest first")
    listing.add_argument("--flow", help="only runs of this flow")
    listing.add_argument("--state", help="only runs in this state (e.g. Failed, Running)")
    listing.add_argument("--limit", type=int, default=20, help="how many (default: 20)")
    listing.add_argument("--before", metavar="RUN_ID", help="the page after this run")
    show = what.add_parser("show", help="a run and its tasks")
    show.add_argument("run_id", metavar="RUN_ID")
    events = what.add_parser("events", help="a run's journal of state changes")
    events.add_argument("run_id", metavar="RUN_ID")
    events.add_argument("--after", type=int, default=0, metavar="SEQ", help="from seq SEQ+1")
    resume = what.add_parser(
        "resume", help="resume an unfinished run (finished tasks are not run again)"
    )
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("target", metavar="TARGET", help=target_help)
    resume.add_argument("--plain", action="store_true", help="no live table")
    for sub in (listing, show, events, resume):
        sub.add_argument("--store", default=DEFAULT_STORE, metavar="PATH", help=store_help)
    for sub in (run, serve, resume):
        sub.add_argument(
            "--log-level",
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="asyncflow's log records shown on stderr (default: WARNING, and the engine's "
            "own records only for serve: run and resume report failures themselves)",
        )
    for sub in (listing, show, events):
        sub.add_argument("--json", action="store_true", help="JSON lines instead of text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    from . import _commands

    handler = {
        "run": _commands.run,
        "visualize": _commands.visualize,
        "serve": _commands.serve,
        "runs": _commands.runs,
    }[args.command]
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("asyncflow: interrupted", file=sys.stderr)
        return 130
    except AsyncflowError as exc:  # usage errors, unknown runs, store and Graphviz errors
        get_logger("asyncflow.cli").debug("command failed", exc_info=True)
        print(f"asyncflow: error: {_message(exc)}", file=sys.stderr)
        return 2


def _message(exc: BaseException) -> str:
    # KeyError and friends quote their argument; the message reads better without.
    return str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
