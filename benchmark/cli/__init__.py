"""`python -m benchmark`: a thin command line over the library. Each command parses its options
(`parser.py`, `arguments.py`) and calls one library function; the table below names the handler of each."""
from __future__ import annotations

import sys
from typing import Callable

from ..heap import keep_freed_memory
from ..registry import PluginLoadError, Registry
from ..store.rows import RunFolderBusy
from . import grid, reports, tools
from .listing import list_command
from .parser import build_parser

COMMANDS: dict[str, Callable] = {
    "run": grid.run, "frontier": grid.frontier, "list": list_command,
    "leaderboard": reports.leaderboard, "compare": reports.compare, "levers": reports.levers, "site": reports.site,
    "stale": reports.stale,
    "export": tools.export, "show": tools.show, "bands": tools.bands, "trace": tools.trace, "profile": tools.profile,
    "check-gpu": tools.check_gpu, "detect": tools.detect, "pack-data": tools.pack_data,
    "unpack-data": tools.unpack_data, "slice": tools.slice_command,
}


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run its command; 2 on bad input (with the reason on stderr), else the command's code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.argv = argv  # `run` prints the command that resumes it
    keep_freed_memory()  # this process computes at --jobs 1, in `trace`, `profile`, ...
    strict, Registry.strict = Registry.strict, args.strict_plugins
    try:
        return COMMANDS[args.command](args)
    except (KeyError, ValueError, FileNotFoundError, RunFolderBusy, PluginLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        Registry.strict = strict


__all__ = ["build_parser", "main"]
