"""The site's other pages: a method configuration's, the comparison with a reference, a board's frontier and the
index."""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ...presets import plumbing_only
from ..agreement import TARGETS, Agreement
from ..frontier import PER_COLUMN, READ_AT, per_column, read_at
from ..leaderboard import OK, Leaderboard
from .render import effective, finite, number, render


def _board_key(board: Leaderboard) -> str:
    ratio = "" if board.poison_ratio == 1.0 else f" · {board.poison_ratio:.0%} protected"
    return f"{board.dataset} · {board.preset_label} · {board.model}{ratio}"


def method_page(label: str, entries: list[tuple[Leaderboard, str, dict[str, Any]]],
                galleries: Sequence[tuple[int, str]] = ()) -> str:
    """A method configuration's budget, parameters, perturbation statistics (one line per board and seed) and
    galleries ((seed, image path in the site) pairs)."""
    rows = [r for _, _, r in entries]
    seen, lines = set(), []
    for board, file, row in entries:  # one line per board and seed (the same generation under every countermeasure)
        stats = row.get("perturbation")
        key = (_board_key(board), row["seed"], json.dumps(stats, sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            lines.append((board, file, row, stats if isinstance(stats, dict) else {}))
    keys = list(dict.fromkeys(k for *_, stats in lines for k in stats))
    return render(
        "method.html", title=f"Method {label}", label=label, names=sorted({str(r.get("method")) for r in rows}),
        budgets=sorted({str(r["budget"]) for r in rows if r.get("budget") is not None}),
        settings=list({json.dumps(effective(r, "method"), sort_keys=True, default=str): effective(r, "method")
                       for r in rows}.values()),
        keys=keys,
        lines=[{"board": _board_key(b), "file": f, "seed": r["seed"], "budget": r.get("budget", "–"),
                "stats": [(s[k] if finite(s.get(k)) else "", number(s.get(k))) for k in keys]}
               for b, f, r, s in lines],
        galleries=list(galleries), boards=list(dict.fromkeys((f, _board_key(b)) for b, f, _ in entries)),
    )


def _figures(a: Agreement) -> list[tuple[str, str, str, str, bool]]:
    """The agreement figures (benchmark.agreement): name, value, interval over seeds, target, whether met."""
    f, met, iv = a.figures, a.met(), a.intervals

    def span(key: str, fmt: str) -> str:
        low, high = iv.get(key, (math.nan, math.nan))
        return "" if math.isnan(low) else f"{format(low, fmt)}–{format(high, fmt)}"

    return [
        ("verdicts agree (judged cells)", f"{f.agree} / {f.judged}" + (f" = {f.verdicts:.0%}" if f.judged else ""),
         span("verdicts", ".0%"), f"≥ {TARGETS['verdicts']:.0%}", met["verdicts"]),
        (f"Spearman of the shares ({f.spearman_cells} cells)", f"{f.spearman:.2f}", span("spearman", ".2f"),
         f"≥ {TARGETS['spearman']}", met["spearman"]),
        ("efficacy gap", f"{f.efficacy_gap:.2f} ({f.gap_method})" if f.gap_method else "–",
         span("efficacy_gap", ".2f"), f"≤ {TARGETS['efficacy_gap']}", met["efficacy_gap"]),
        ("seeds per cell (fewest)", str(a.seeds), "", f"≥ {TARGETS['seeds']}", met["seeds"]),
    ]


def compare_page(boards: list[Leaderboard], files: list[str], reference: str | os.PathLike) -> str:
    """Per board: our cells beside the reference's, and the protocol's facts checked (benchmark.compare)."""
    from ..compare import compare, read_reference

    table = read_reference(reference)  # reference cells
    sections = []
    for board, file in zip(boards, files):
        section: dict[str, Any] = {"title": board.title, "file": file}
        try:
            with warnings.catch_warnings():  # the board's own warnings were given when it was built
                warnings.simplefilter("ignore")
                result = compare(board.rows, table)
        except ValueError as exc:
            sections.append(section | {"error": str(exc)})
            continue
        ours = result.cells  # benchmark.compare's own text: ours (reference)
        sections.append(section | {
            "error": None, "figures": _figures(result.agreement), "excluded": result.agreement.excluded,
            "cells": ours, "cell_rows": [(m, [ours.at[m, c] for c in ours.columns]) for m in ours.index],
            "reproduced": result.reproduced, "checked": result.checked, "uncertain": result.uncertain,
            "fact_columns": list(result.facts.columns), "facts": list(result.facts.itertuples(index=False)),
        })
    return render("compare.html", title="Comparison with the reference", reference=Path(reference).name,
                  sections=sections)


def _num(value: float, digits: int = 1) -> tuple[str, str]:
    """A sortable number: (sort key, text); ∞ sorts above every finite value, – has no key."""
    if pd.isna(value):
        return "", "–"
    return ("1e9", "∞") if math.isinf(value) else (f"{value:.4f}", f"{value:.{digits}f}")


def frontier_page(board: Leaderboard, table: pd.DataFrame, picture: str) -> str:
    """A board's strength ladders: the accuracy-against-PSNR plot, the reading at matched PSNR and every
    configuration (sortable)."""
    shown = [m for m in dict.fromkeys(table["method"]) if m != "clean"]
    columns = per_column(table)
    return render(
        "frontier.html", title=f"Frontier: {board.title}", board_title=board.title, picture=picture,
        read_at=[f"{p:g}" for p in READ_AT],
        reading=[(m, [_num(read_at(table, m, p)) for p in READ_AT]) for m in shown],
        columns=columns,
        each=[(f"{p:g}", [(m, [_num(read_at(table, m, p, PER_COLUMN + c)) for c in columns]) for m in shown])
              for p in READ_AT],
        configurations=[{"label": r.label, "knob": r.knob, "setting": f"{r.knob}={r.value:g}" if r.knob else "",
                         "numbers": [_num(r.psnr), _num(r.ssim, 3), _num(r.none), _num(r.worst), _num(r.mean)],
                         "seeds": r.seeds} for r in table.itertuples()],
    )


def _leaders(board: Leaderboard, count: int = 3) -> str:
    """The board's strongest methods by `worst` (the clean row aside), with their PSNR: `tap 52.4 (31.7 dB)`."""
    visible = board.perceptibility
    ranked = [(m, w) for m, w in board.summary["worst"].dropna().sort_values(kind="stable").items()
              if visible.at[m, "class"] != "reference"][:count]
    return ", ".join(f"{m} {w:.1f}" + ("" if pd.isna(visible.at[m, "psnr"]) else f" ({visible.at[m, 'psnr']:.1f} dB)")
                     for m, w in ranked)


def index_page(boards: list[Leaderboard], files: list[str], method_files: dict[str, str], with_compare: bool,
               frontier_files: dict[str, str] | None = None) -> str:
    """The site's front page: every board with its strongest methods, the method pages, comparison and frontiers."""
    listed = []
    for board, file in zip(boards, files):
        counts = board.seeds.to_numpy()[board.status.to_numpy() == OK]
        most = counts.max() if counts.size else 0
        listed.append({
            "dataset": board.dataset, "preset": board.preset_label, "plumbing": plumbing_only(board.preset),
            "model": board.model, "ratio_key": repr(board.poison_ratio), "ratio": f"{board.poison_ratio:.0%}",
            "seeds_key": most, "seeds": f"{counts.min()}–{most}" if counts.size and counts.min() != most else str(most),
            "methods": len(board.mean.index), "countermeasures": len(board.mean.columns), "leaders": _leaders(board),
            "file": file,
        })
    return render("index.html", title="uebench results", boards=listed, methods=method_files,
                  with_compare=with_compare, frontiers=frontier_files or {})


