"""The commands that render or check rows: `leaderboard`, `compare`, `levers`, `site`, `stale`."""
from __future__ import annotations

import argparse
from pathlib import Path


def leaderboard(args: argparse.Namespace) -> int:
    """`leaderboard`: tables and heatmaps from run folders."""
    from ..report.tables import write_leaderboard

    first = Path(args.run_dirs[0])
    out = args.out or (first.parent if first.is_file() else first)
    for path in write_leaderboard(args.run_dirs, out, args.name, args.with_rows):
        print(path)
    return 0


def compare(args: argparse.Namespace) -> int:
    """`compare`: the agreement figures with reference numbers and our cells beside theirs."""
    from ..report.compare import write_comparison

    text = write_comparison(args.run_dirs, args.reference, args.metric, args.resamples, args.json)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


def levers(args: argparse.Namespace) -> int:
    """`levers`: a calibration study's boards side by side."""
    from ..report.calibration import write_levers

    print(write_levers(args.run_dirs, args.reference, args.resamples, args.base_hours, args.out, args.name))
    return 0


def site(args: argparse.Namespace) -> int:
    """`site`: the static web site."""
    from ..report.site import write_site

    written = write_site(args.run_dirs, args.out, args.reference)
    print(f"{len(written)} files written; open {written[0]}")
    return 0


def stale(args: argparse.Namespace) -> int:
    """`stale`: the finished rows this checkout would compute under another cell id; 1 when there are any."""
    from ..store.rows import published_rows_files, read_rows
    from ..tools.currency import render, superseded

    rows = read_rows(args.run_dirs or published_rows_files())
    found = superseded(rows, args.data_root)
    print(render(found, sum(r.get("status") == "ok" for r in rows)))
    return 1 if found else 0
