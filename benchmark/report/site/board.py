"""A board's page: the sortable, coloured table (summaries, budget, countermeasures) and one panel per cell with its
curve, settings, timings and provenance."""
from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Iterable

import pandas as pd

from ...presets import plumbing_only
from ..leaderboard import FAILED, MISSING, OK, UNSTABLE_MARK, UNSTABLE_SPREAD, Leaderboard, flat_versions
from ..perceptibility import HEADERS, measure_text, measures_of
from ..tables import cell_text
from .render import colour, curve_svg, effective, number, render


def _label(row: dict[str, Any], kind: str, shown: Iterable[str]) -> str | None:
    """The board label a row's method or countermeasure configuration is shown under, or None."""
    base = row.get(f"{kind}_label") or row.get(kind)
    ident = row.get(f"{kind}_id") or ""
    for candidate in (base, f"{base}@{str(ident)[:6]}"):
        if candidate in shown:
            return candidate
    return None


def method_key(row: dict[str, Any]) -> str:
    return str(row.get("method_label") or row.get("method"))


def _cell_rows(board: Leaderboard) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(method label, countermeasure label) → the board's rows of that cell, by seed."""
    columns = list(board.mean.columns)
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in board.rows:
        m, c = _label(row, "method", board.mean.index), _label(row, "countermeasure", columns)
        if m is not None and c is not None:
            cells[(m, c)].append(row)
    return cells


def _panel(board: Leaderboard, pid: str, method: str, column: str, rows: list[dict[str, Any]],
           status: str) -> dict[str, Any]:
    """One cell's panel: its accuracy, curve, settings, timings and provenance per seed."""
    seeds = sorted(rows, key=lambda r: r["seed"])
    acc, per_seed = "", ""
    if status == OK:
        acc = cell_text(board, board.mean[[column]], missing="–", spread=True).iat[board.mean.index.get_loc(method), 0]
        accs = board.accs.get((method, column), {})
        per_seed = ", ".join(f"{s}: {a:.1f}" for s, a in sorted(accs.items())) if len(accs) > 1 else ""
    first = seeds[0] if seeds else {}
    timing_keys = list(dict.fromkeys(k for r in seeds if isinstance(r.get("seconds"), dict) for k in r["seconds"]))
    return {
        "pid": pid, "method": method, "column": column, "status": status, "acc": acc, "per_seed": per_seed,
        "errors": [(r["seed"], r.get("error") or "no error recorded") for r in seeds if r.get("status") != OK],
        "curve": curve_svg([(f"seed {r['seed']}", r.get("history")) for r in seeds if r.get("status") == OK]),
        "method_settings": effective(first, "method"), "budget": first.get("budget", "–"),
        "countermeasure_settings": effective(first, "countermeasure"), "timing_keys": timing_keys,
        "timings": [(r["seed"], [number(r["seconds"].get(k)) if isinstance(r.get("seconds"), dict) else "–"
                                 for k in timing_keys]) for r in seeds],
        "provenance": [{"seed": r["seed"], "commit": r.get("git_commit", "–"), "dirty": json.dumps(r.get("git_dirty")),
                        "device": r.get("device", "–"), "device_name": r.get("device_name"),
                        "threads": r.get("threads", "–")} for r in seeds],
        "versions": [(r["seed"], flat_versions(r.get("versions"))) for r in seeds],
    }


def _measure_heads(board: Leaderboard) -> list[tuple[str, str]]:
    return [*((HEADERS[c], "number") for c in measures_of(board.perceptibility)), ("budget class", "text"),
            ("rank in class", "number")]


def _measure_cells(board: Leaderboard, method: str) -> dict[str, Any]:
    """The method's perceptibility (sort key and text per measure), budget class, threat model and rank in class."""
    r = board.perceptibility.loc[method]
    measures = []
    for c in measures_of(board.perceptibility):
        value = float(r[c])
        # an unchanged set (PSNR ∞) sorts above every finite one; an unmeasured one has no sort key
        key = "" if pd.isna(value) else "1e9" if math.isinf(value) else f"{value:.4f}"
        measures.append((key, measure_text(c, value)))
    return {"measures": measures, "budget_class": r["class"], "threat": r["threat"],
            "rank": "" if pd.isna(r["rank"]) else f"{int(r['rank'])}"}


def board_page(board: Leaderboard, method_files: dict[str, str]) -> str:
    """The board's table (sortable, coloured, each cell linking its panel) and the panels."""
    table = board.table.round(2)  # the CSV's values: sorting keys and colours
    shown = cell_text(board, board.table, missing="–", spread=True)  # the Markdown's text, marks included
    values = table.to_numpy(dtype=float)
    finite = values[~pd.isna(values)]
    low = 5 * math.floor(finite.min() / 5) if finite.size else 0
    high = max(5 * math.ceil(finite.max() / 5) if finite.size else 100, low + 5)
    cells = _cell_rows(board)
    panels: list[dict[str, Any]] = []

    def cell(i: int, method: str, column: str) -> dict[str, Any]:
        j = table.columns.get_loc(column)
        summary = column in board.summary.columns
        status = OK if summary else board.status.at[method, column]
        value = table.iat[i, j]
        classes = ["num"] + (["summary"] if summary else [])
        entry = {"text": shown.iat[i, j], "key": "", "colours": None, "pid": None}
        if status == FAILED or pd.isna(value):
            classes.append(FAILED if status == FAILED else MISSING)
        else:
            entry |= {"key": f"{value:.2f}", "colours": colour(float(value), low, high)}
        if not summary and status != MISSING:
            entry["pid"] = f"cell-{i}-{j}"
            panels.append(_panel(board, entry["pid"], method, column, cells.get((method, column), []), status))
        return entry | {"classes": " ".join(classes)}

    rows = []
    for i, method in enumerate(table.index):
        of_method = [r for c in board.mean.columns for r in cells.get((method, c), [])]
        rows.append({"method": method, "link": method_files.get(method_key(of_method[0])) if of_method else None,
                     "summaries": [cell(i, method, c) for c in board.summary.columns],
                     "countermeasures": [cell(i, method, c) for c in board.mean.columns],
                     **_measure_cells(board, method)})
    return render(
        "board.html", title=f"Leaderboard: {board.title}", board=board, plumbing=plumbing_only(board.preset),
        scale=(low, high), gradient=", ".join(colour(low + (high - low) * k / 4, low, high)[0] for k in range(5)),
        summaries=list(board.summary.columns), measure_heads=_measure_heads(board), countermeasures=list(board.mean.columns),
        extra=list(board.extra),
        rows=rows, panels=panels, incomplete=board.incomplete.any(), unstable=board.unstable.any().any(),
        several=board.seeds.max().max() > 1, unstable_mark=UNSTABLE_MARK, unstable_spread=f"{UNSTABLE_SPREAD:g}",
    )


