"""A static web site rendered from result rows: an index of the leaderboards, one sortable page per board whose
cells open a panel (accuracy curve as inline SVG, parameters, timings, provenance), one page per method
configuration (budget, perturbation statistics, the galleries the runs saved) and, with a reference CSV, the
comparison's facts.

Plain HTML, one CSS and one small hand-written JavaScript file (column sorting); nothing is fetched from the
network and every link is relative, so the site works opened from the file system. Every accuracy shown is
the value the leaderboard CSV holds (rounded to 2 decimals), printed with one decimal as in the Markdown.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from ...identity import digest
from ...store.rows import read_detection, read_rows
from ..frontier import frontier_table, plot_frontier
from ..gallery import GALLERY_DIR, gallery_name
from ..leaderboard import Leaderboard, attach_detection, build_leaderboards
from ..tables import board_stems, inside, safe_name
from .board import board_page, method_key
from .pages import compare_page, frontier_page, index_page, method_page
from .render import curve_svg

__all__ = ["copy_galleries", "curve_svg", "write_site"]

STATIC = Path(__file__).with_name("static")
STATIC_FILES = ("style.css", "site.js")


def _method_files(boards: list[Leaderboard]) -> dict[str, str]:
    """Method configuration label → its page's file name (unique after sanitising)."""
    labels = list(dict.fromkeys(method_key(r) for b in boards for r in b.rows))
    files: dict[str, str] = {}
    for label in labels:
        name = f"method-{safe_name(label)}.html"
        if name in files.values():
            name = f"method-{safe_name(label)}-{digest(label)[:6]}.html"
        files[label] = name
    return files


def copy_galleries(paths: list[str | os.PathLike], seeds: dict[str, set[int]],
                   out: Path) -> dict[str, list[tuple[int, str]]]:
    """Copy the galleries of these method labels and seeds (`gallery/LABEL-seedS.png` in a run folder, or beside a
    rows file) into OUT/gallery/; returns label → (seed, path in the site), one entry per distinct picture."""
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    copied: dict[tuple[str, str], str] = {}  # (file name, content SHA-256) → path in the site
    for source in map(Path, paths):
        folder = (source if source.is_dir() else source.parent) / GALLERY_DIR
        for label in sorted(seeds):
            for seed in sorted(seeds[label]):
                file = folder / gallery_name(label, seed)
                if not file.is_file():
                    continue
                data = file.read_bytes()
                key = (file.name, hashlib.sha256(data).hexdigest())
                if key not in copied:
                    name = f"{GALLERY_DIR}/{file.name}"
                    if name in copied.values():  # another folder's picture of this label and seed
                        name = f"{GALLERY_DIR}/{file.stem}-{key[1][:6]}.png"
                    target = inside(out, name)
                    target.parent.mkdir(exist_ok=True)
                    target.write_bytes(data)
                    copied[key] = name
                if (seed, copied[key]) not in found[label]:
                    found[label].append((seed, copied[key]))
    return found


def write_site(paths: list[str | os.PathLike], out_dir: str | os.PathLike,
               reference: str | os.PathLike | None = None) -> list[Path]:
    """Render the site of the rows in `paths` (run folders or .jsonl files) into OUT; returns the files written,
    index.html first."""
    boards = build_leaderboards(read_rows(paths))
    attach_detection(boards, read_detection(paths))
    if not boards:
        raise ValueError(f"no rows to show in {', '.join(map(str, paths))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [f"{stem}.html" for stem in board_stems(boards, "board")]
    method_files = _method_files(boards)
    pages: dict[str, str] = {}
    for board, file in zip(boards, files):
        pages[file] = board_page(board, method_files)
    entries: dict[str, list[tuple[Leaderboard, str, dict[str, Any]]]] = defaultdict(list)
    for board, file in zip(boards, files):
        for row in board.rows:
            entries[method_key(row)].append((board, file, row))
    seeds = {label: {row["seed"] for _, _, row in rows} for label, rows in entries.items()}
    galleries = copy_galleries(paths, seeds, out)
    for label, file in method_files.items():
        pages[file] = method_page(label, entries[label], galleries.get(label, []))
    if reference is not None:
        pages["compare.html"] = compare_page(boards, files, reference)
    frontier_files = {}
    for board, file in zip(boards, files):
        table = frontier_table(board.rows)
        if (table["method"].value_counts() > 1).any():  # a method at several strengths: a ladder to plot
            name = file.replace("board", "frontier", 1)
            plot_frontier(table, board.title, inside(out, name.replace(".html", ".png")))
            pages[name] = frontier_page(board, table, name.replace(".html", ".png"))
            frontier_files[board.title] = name
    pages = {"index.html": index_page(boards, files, method_files, reference is not None, frontier_files)} | pages
    written = []
    for name, text in pages.items():
        path = inside(out, name)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for name in STATIC_FILES:
        path = inside(out, name)
        shutil.copyfile(STATIC / name, path)
        written.append(path)
    written += sorted({out / path for items in galleries.values() for _, path in items})
    written += [out / name.replace(".html", ".png") for name in frontier_files.values()]
    return written
