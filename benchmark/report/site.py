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
import html
import json
import math
import os
import shutil
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ..presets import plumbing_only
from ..store.rows import read_rows
from .agreement import TARGETS, Agreement
from .frontier import PER_COLUMN, READ_AT, frontier_table, per_column, plot_frontier, read_at
from .gallery import GALLERY_DIR, gallery_name
from .leaderboard import (
    FAILED, MISSING, OK, SUMMARY_COLUMNS, UNSTABLE_MARK, UNSTABLE_SPREAD, Leaderboard, build_leaderboards,
    flat_versions,
)
from .tables import board_stems, cell_text, inside, safe_name
from .perceptibility import COLUMNS as MEASURES
from .perceptibility import HEADERS, measure_text

STATIC = Path(__file__).with_name("site_static")
STATIC_FILES = ("style.css", "site.js")
# viridis at 0, .25, .5, .75, 1: low accuracy (strong protection) dark, high light, as the heatmap PNG
_STOPS = ((0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x91, 0x8c), (0x5e, 0xc9, 0x62), (0xfd, 0xe7, 0x25))
_SUMMARY_CLASS = ' class="summary"'
_SERIES = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def _e(value: Any) -> str:
    """Text escaped for HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> str:
    """A statistic of unknown scale: 4 significant digits; text as it is; – for none."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _colour(value: float, low: float, high: float) -> tuple[str, str]:
    """Background and text colour of an accuracy on the board's scale."""
    t = min(max((value - low) / (high - low), 0.0), 1.0) * (len(_STOPS) - 1)
    i = min(int(t), len(_STOPS) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(_STOPS[i], _STOPS[i + 1])]
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    return "#%02x%02x%02x" % tuple(rgb), "#000" if luminance > 0.5 else "#fff"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<link rel=\"stylesheet\" href=\"style.css\">\n"
        "<script src=\"site.js\" defer></script>\n</head>\n<body>\n"
        "<nav><a href=\"index.html\">uebench results</a></nav>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _effective(row: dict[str, Any], kind: str) -> Any:
    """The settings a row's method or countermeasure ran with (its identity: the preset's values in place of the
    parameters' placeholders), else its parameters as given (rows from before identities)."""
    identity = row.get("identity")
    settings = identity.get(kind, {}).get("settings") if isinstance(identity, dict) else None
    return settings if isinstance(settings, dict) else row.get(f"{kind}_params")


def _kv(mapping: Any) -> str:
    """A dict as a definition list (nested values as JSON); a note when empty."""
    if not isinstance(mapping, dict) or not mapping:
        return "<p class=\"muted\">none</p>"
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v if isinstance(v, str) else json.dumps(v, default=str))}</dd>"
                    for k, v in mapping.items())
    return f"<dl class=\"kv\">{items}</dl>"


def curve_svg(series: list[tuple[str, Any]], width: int = 360, height: int = 200) -> str:
    """Accuracy (%) over epochs as an inline SVG, one polyline per (name, history of [epoch, acc in 0..1])."""
    points = [(name, [(float(p[0]), 100 * float(p[1])) for p in (history or [])
                      if isinstance(p, (list, tuple)) and len(p) == 2 and _finite(p[0]) and _finite(p[1])])
              for name, history in series]
    points = [(name, pts) for name, pts in points if pts]
    if not points:
        return "<p class=\"muted\">no accuracy history recorded</p>"
    left, right, top, bottom = 38, 10, 10, 30
    x_max = max(max(x for x, _ in pts) for _, pts in points) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + plot_w * x / x_max

    def sy(y: float) -> float:
        return top + plot_h * (1 - min(max(y, 0.0), 100.0) / 100)

    parts = [f"<svg class=\"curve\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
             f"viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"test accuracy over epochs\">"]
    for y in (0, 25, 50, 75, 100):
        parts.append(f"<line x1=\"{left}\" x2=\"{width - right}\" y1=\"{sy(y):.1f}\" y2=\"{sy(y):.1f}\" "
                     f"stroke=\"#e5e5e5\"/><text x=\"{left - 4}\" y=\"{sy(y) + 3:.1f}\" text-anchor=\"end\">{y}</text>")
    epochs = sorted({x for _, pts in points for x, _ in pts})
    step = max(1, math.ceil(len(epochs) / 8))
    for x in epochs[::step]:
        parts.append(f"<text x=\"{sx(x):.1f}\" y=\"{height - bottom + 13}\" text-anchor=\"middle\">{x:g}</text>")
    parts.append(f"<text x=\"{left + plot_w / 2:.1f}\" y=\"{height - 3}\" text-anchor=\"middle\">epoch</text>")
    parts.append(f"<text x=\"10\" y=\"{top + plot_h / 2:.1f}\" text-anchor=\"middle\" "
                 f"transform=\"rotate(-90 10 {top + plot_h / 2:.1f})\">test acc (%)</text>")
    parts.append(f"<line x1=\"{left}\" x2=\"{left}\" y1=\"{top}\" y2=\"{top + plot_h}\" stroke=\"#888\"/>"
                 f"<line x1=\"{left}\" x2=\"{width - right}\" y1=\"{top + plot_h}\" y2=\"{top + plot_h}\" stroke=\"#888\"/>")
    for k, (name, pts) in enumerate(points):
        colour = _SERIES[k % len(_SERIES)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{coords}\" "
                     f"data-series=\"{_e(name)}\"/>")
        for x, y in pts:
            parts.append(f"<circle cx=\"{sx(x):.1f}\" cy=\"{sy(y):.1f}\" r=\"2.5\" fill=\"{colour}\">"
                         f"<title>{_e(name)}: epoch {x:g}, {y:.1f} %</title></circle>")
        if len(points) > 1:
            parts.append(f"<text x=\"{width - right - 4}\" y=\"{top + 12 + 12 * k}\" text-anchor=\"end\" "
                         f"style=\"fill:{colour}\">{_e(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _label(row: dict[str, Any], kind: str, shown: Iterable[str]) -> str | None:
    """The board label a row's method or countermeasure configuration is shown under, or None."""
    base = row.get(f"{kind}_label") or row.get(kind)
    ident = row.get(f"{kind}_id") or ""
    for candidate in (base, f"{base}@{str(ident)[:6]}"):
        if candidate in shown:
            return candidate
    return None


def _cell_rows(board: Leaderboard) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(method label, countermeasure label) → the board's rows of that cell, by seed."""
    columns = [c for c in board.mean.columns if c not in SUMMARY_COLUMNS]
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in board.rows:
        m, c = _label(row, "method", board.mean.index), _label(row, "countermeasure", columns)
        if m is not None and c is not None:
            cells[(m, c)].append(row)
    return cells


def _method_key(row: dict[str, Any]) -> str:
    return str(row.get("method_label") or row.get("method"))


def _method_files(boards: list[Leaderboard]) -> dict[str, str]:
    """Method configuration label → its page's file name (unique after sanitising)."""
    labels = list(dict.fromkeys(_method_key(r) for b in boards for r in b.rows))
    files: dict[str, str] = {}
    for label in labels:
        name = f"method-{safe_name(label)}.html"
        if name in files.values():
            from ..identity import digest

            name = f"method-{safe_name(label)}-{digest(label)[:6]}.html"
        files[label] = name
    return files


def _panel(board: Leaderboard, pid: str, method: str, column: str, rows: list[dict[str, Any]], status: str) -> str:
    seeds = sorted(rows, key=lambda r: r["seed"])
    head = f"<h3>{_e(method)} × {_e(column)} <span class=\"muted\">({_e(status)})</span></h3>"
    i = board.mean.index.get_loc(method)
    summary = ""
    if status == OK:
        text = cell_text(board, board.mean[[column]], missing="–", spread=True).iat[i, 0]
        accs = board.accs.get((method, column), {})
        summary = (f"<p>final clean test accuracy (%): <b class=\"acc\">{_e(text)}</b>"
                   + (f"; per seed: {', '.join(f'{s}: {a:.1f}' for s, a in sorted(accs.items()))}" if len(accs) > 1 else "")
                   + "</p>")
    errors = "".join(f"<p>seed {_e(r['seed'])} failed:</p><pre>{_e(r.get('error') or 'no error recorded')}</pre>"
                     for r in seeds if r.get("status") != OK)
    curve = curve_svg([(f"seed {r['seed']}", r.get("history")) for r in seeds if r.get("status") == OK])
    first = seeds[0] if seeds else {}
    params = (f"<div><h4>method settings (as run)</h4>{_kv(_effective(first, 'method'))}"
              f"<p class=\"muted\">budget: {_e(first.get('budget', '–'))}</p></div>"
              f"<div><h4>countermeasure settings (as run)</h4>{_kv(_effective(first, 'countermeasure'))}</div>")
    timing_keys = list(dict.fromkeys(k for r in seeds if isinstance(r.get("seconds"), dict) for k in r["seconds"]))
    timings = "<p class=\"muted\">no timings recorded</p>"
    if timing_keys:
        body = "".join(
            f"<tr><td>{_e(r['seed'])}</td>" + "".join(
                f"<td class=\"num\">{_e(_number(r['seconds'].get(k)) if isinstance(r.get('seconds'), dict) else '–')}</td>"
                for k in timing_keys) + "</tr>" for r in seeds)
        timings = (f"<table><thead><tr><th>seed</th>{''.join(f'<th>{_e(k)} (s)</th>' for k in timing_keys)}"
                   f"</tr></thead><tbody>{body}</tbody></table>")
    provenance = "".join(
        f"<tr><td>{_e(r['seed'])}</td><td><code>{_e(r.get('git_commit', '–'))}</code></td>"
        f"<td>{_e(json.dumps(r.get('git_dirty')))}</td><td>{_e(r.get('device', '–'))}"
        + (f" ({_e(r['device_name'])})" if r.get("device_name") else "")
        + f"</td><td>{_e(r.get('threads', '–'))}</td></tr>" for r in seeds)
    versions = "".join(
        f"<details><summary>versions, seed {_e(r['seed'])}</summary>{_kv(flat_versions(r.get('versions')))}</details>"
        for r in seeds)
    return (
        f"<section class=\"panel\" id=\"{pid}\" data-method=\"{_e(method)}\" data-countermeasure=\"{_e(column)}\">"
        f"{head}{summary}{errors}<div class=\"cols\"><div><h4>accuracy over epochs</h4>{curve}</div>{params}</div>"
        f"<h4>timings</h4>{timings}<h4>provenance</h4>"
        "<table><thead><tr><th>seed</th><th>git_commit</th><th>git_dirty</th><th>device</th><th>threads</th></tr>"
        f"</thead><tbody>{provenance}</tbody></table>{versions}"
        "<p><a href=\"#board\">back to the table</a></p></section>"
    )


_MEASURE_HEADS = (*((HEADERS[c], "number") for c in MEASURES), ("budget class", "text"), ("rank in class", "number"))


def _measure_cells(board: Leaderboard, method: str) -> list[str]:
    """The method's perceptibility, budget class and rank in it, as sortable table cells."""
    r = board.perceptibility.loc[method]
    cells = []
    for c in MEASURES:
        value = float(r[c])
        # an unchanged set (PSNR ∞) sorts above every finite one; an unmeasured one has no sort key
        key = "" if pd.isna(value) else "1e9" if math.isinf(value) else f"{value:.4f}"
        cells.append(f"<td class=\"num measure\" data-value=\"{key}\">{measure_text(c, value)}</td>")
    rank = "" if pd.isna(r["rank"]) else f"{int(r['rank'])}"
    return cells + [f"<td class=\"measure\" data-text=\"{_e(r['class'])}\" title=\"{_e(r['threat'])}\">{_e(r['class'])}</td>",
                    f"<td class=\"num measure\" data-value=\"{rank}\">{rank or '–'}</td>"]


def board_page(board: Leaderboard, method_files: dict[str, str]) -> str:
    """The board's table (sortable, coloured, each cell linking its panel) and the panels."""
    mean = board.mean.round(2)  # the CSV's values: sorting keys and colours
    shown = cell_text(board, board.mean, missing="–", spread=True)  # the Markdown's text, marks included
    columns = list(mean.columns)
    countermeasures = [c for c in columns if c not in SUMMARY_COLUMNS]
    several = board.seeds.max().max() > 1
    unstable, incomplete = board.unstable, board.incomplete
    finite = mean.to_numpy(dtype=float)
    finite = finite[~pd.isna(finite)]
    scale_low = 5 * math.floor(finite.min() / 5) if finite.size else 0
    scale_high = max(5 * math.ceil(finite.max() / 5) if finite.size else 100, scale_low + 5)
    cells = _cell_rows(board)

    # the ranking first, where a narrow window shows it: summaries, the method's budget, then the countermeasures
    summaries = [c for c in columns if c in SUMMARY_COLUMNS]
    head = "<th data-type=\"text\" scope=\"col\">method</th>" + "".join(
        f"<th data-type=\"number\" scope=\"col\"{_SUMMARY_CLASS}>{_e(c)}</th>" for c in summaries) + "".join(
        f"<th data-type=\"{kind}\" scope=\"col\" class=\"measure\">{_e(label)}</th>" for label, kind in _MEASURE_HEADS
    ) + "".join(f"<th data-type=\"number\" scope=\"col\">{_e(c)}</th>" for c in countermeasures)
    body, panels = [], []
    for i, method in enumerate(mean.index):
        rows_of_method = [r for c in countermeasures for r in cells.get((method, c), [])]
        link = method_files.get(_method_key(rows_of_method[0])) if rows_of_method else None
        name = f"<a href=\"{_e(link)}\">{_e(method)}</a>" if link else _e(method)
        tds = [f"<th scope=\"row\" data-text=\"{_e(method)}\">{name}</th>"]
        for j, column in sorted(enumerate(columns), key=lambda jc: jc[1] not in SUMMARY_COLUMNS):
            summary = column in SUMMARY_COLUMNS
            status = OK if summary else board.status.at[method, column]
            value = mean.iat[i, j]
            classes = ["num"] + (["summary"] if summary else [])
            text = f"<span class=\"v\">{_e(shown.iat[i, j])}</span>"
            if status == FAILED or pd.isna(value):
                classes.append(FAILED if status == FAILED else MISSING)
                attrs, style = "data-value=\"\"", ""
            else:
                background, foreground = _colour(float(value), scale_low, scale_high)
                attrs = f"data-value=\"{value:.2f}\" title=\"{value:.2f}\""
                style = f" style=\"background:{background};color:{foreground}\""
            if not summary and status != MISSING:
                pid = f"cell-{i}-{j}"
                text = f"<a href=\"#{pid}\">{text}</a>"
                panels.append(_panel(board, pid, method, column, cells.get((method, column), []), status))
            tds.append(f"<td class=\"{' '.join(classes)}\" {attrs}{style}>{text}</td>")
            if column == summaries[-1]:
                tds += _measure_cells(board, method)
        body.append(f"<tr data-method=\"{_e(method)}\">{''.join(tds)}</tr>")

    notes = []
    if plumbing_only(board.preset):
        notes.append(f"Preset <code>{_e(board.preset)}</code>: these numbers test the plumbing only (a tiny victim, "
                     "a few epochs); they say nothing about the methods.")
    if board.provenance:
        notes.append("<b>Mixed provenance</b>: these rows may not be comparable.<ul>"
                     + "".join(f"<li>{_e(n)}</li>" for n in board.provenance) + "</ul>")
    footnotes = []
    if incomplete.any():
        footnotes.append("* Incomplete row: a cell failed or is missing (–), so <code>worst</code> is only a lower "
                         "bound and <code>mean</code> averages the cells present.")
    if unstable.any().any():
        footnotes.append(f"{UNSTABLE_MARK} Unstable cell: its seeds disagree by more than {UNSTABLE_SPREAD:g} points.")
    if several:
        footnotes.append("Cells: seed mean ± standard deviation; <code>worst</code> and <code>mean</code>: value "
                         "[lowest–highest it could be at these seeds].")
    gradient = ", ".join(_colour(scale_low + (scale_high - scale_low) * k / 4, scale_low, scale_high)[0]
                         for k in range(5))
    return _page(f"Leaderboard: {board.title}", (
        f"<h1>Leaderboard: {_e(board.title)}</h1>"
        + "".join(f"<div class=\"note\">{n}</div>" for n in notes)
        + "<p>Final clean test accuracy (%) of a victim trained on the protected set with each countermeasure; lower "
          "is stronger protection. <code>worst</code> is the max over countermeasures (a method's rank), "
          "<code>mean</code> the average. Click a column header to sort; click a cell for its curve, parameters, "
          "timings and provenance.</p>"
        + "<p>The grey columns after <code>worst</code> and <code>mean</code> measure each method's protected "
          "training set against the clean one (mean over seeds): PSNR, SSIM, L∞ and the mean per-image L2. The budget class is the PSNR band; the rank compares "
          "methods within one class only, since between classes <code>worst</code> reflects perturbation size as "
          "much as robustness.</p>"
        + f"<p class=\"muted\">colour: {scale_low} % <span class=\"legend\" style=\"background:linear-gradient("
          f"to right, {gradient})\"></span> {scale_high} %</p>"
        + f"<div class=\"wrap\"><table id=\"board\" class=\"sortable board\"><thead><tr>{head}</tr></thead>"
          f"<tbody>{''.join(body)}</tbody></table></div>"
        + "".join(f"<p class=\"muted\">{f}</p>" for f in footnotes)
        + "".join(panels)
    ))


def _board_key(board: Leaderboard) -> str:
    ratio = "" if board.poison_ratio == 1.0 else f" · {board.poison_ratio:.0%} protected"
    return f"{board.dataset} · {board.preset_label} · {board.model}{ratio}"


def _gallery_section(label: str, galleries: Sequence[tuple[int, str]]) -> str:
    if not galleries:
        return ("<p class=\"muted\">no gallery in the folders given: <code>run</code> saves one per protected set "
                "in <code>RUN/gallery/</code>, and <code>python -m benchmark show</code> draws one.</p>")
    figures = "".join(
        f"<figure class=\"gallery\"><img src=\"{_e(path)}\" alt=\"{_e(f'gallery of {label}, seed {seed}')}\">"
        f"<figcaption>seed {_e(seed)}</figcaption></figure>" for seed, path in galleries)
    return ("<p class=\"muted\">Per class, the first training images of the preset's subset: clean, protected, and "
            "the perturbation amplified to full range (grey: unchanged, lighter: raised, darker: lowered).</p>"
            + figures)


def method_page(label: str, entries: list[tuple[Leaderboard, str, dict[str, Any]]],
                galleries: Sequence[tuple[int, str]] = ()) -> str:
    """A method configuration's budget, parameters, perturbation statistics (one line per board and seed) and
    galleries ((seed, image path in the site) pairs)."""
    rows = [r for _, _, r in entries]
    names = sorted({str(r.get("method")) for r in rows})
    budgets = sorted({str(r["budget"]) for r in rows if r.get("budget") is not None})
    params = list({json.dumps(_effective(r, "method"), sort_keys=True, default=str): _effective(r, "method")
                   for r in rows}.values())
    seen, lines = set(), []
    for board, file, row in entries:  # one line per board and seed (the same generation under every countermeasure)
        stats = row.get("perturbation")
        key = (_board_key(board), row["seed"], json.dumps(stats, sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            lines.append((board, file, row, stats if isinstance(stats, dict) else {}))
    keys = list(dict.fromkeys(k for *_, stats in lines for k in stats))
    if keys:
        table = ("<table class=\"sortable\" id=\"perturbation\"><thead><tr><th data-type=\"text\">board</th>"
                 "<th data-type=\"number\">seed</th><th data-type=\"text\">budget</th>"
                 + "".join(f"<th data-type=\"number\">{_e(k)}</th>" for k in keys) + "</tr></thead><tbody>"
                 + "".join(
                     f"<tr><td data-text=\"{_e(_board_key(b))}\"><a href=\"{_e(f)}\">{_e(_board_key(b))}</a></td>"
                     f"<td class=\"num\" data-value=\"{_e(r['seed'])}\">{_e(r['seed'])}</td><td>{_e(r.get('budget', '–'))}</td>"
                     + "".join(f"<td class=\"num\" data-value=\"{_e(s[k]) if _finite(s.get(k)) else ''}\">"
                               f"{_e(_number(s.get(k)))}</td>" for k in keys) + "</tr>"
                     for b, f, r, s in lines)
                 + "</tbody></table>")
    else:
        table = "<p class=\"muted\">no perturbation statistics recorded</p>"
    boards = list(dict.fromkeys((f, _board_key(b)) for b, f, _ in entries))
    return _page(f"Method {label}", (
        f"<h1>Method {_e(label)}</h1>"
        f"<p>registered method: {', '.join(f'<code>{_e(n)}</code>' for n in names)}</p>"
        "<h2>Budget</h2>" + ("<ul>" + "".join(f"<li id=\"budget\">{_e(b)}</li>" for b in budgets) + "</ul>"
                             if budgets else "<p class=\"muted\">no budget recorded</p>")
        + "<h2>Settings (as run)</h2><p class=\"muted\">The parameters with the preset's values in place of the "
          "placeholders (a 0 or empty parameter means the preset's), as the cell's identity records them.</p>"
        + "".join(_kv(p) for p in params)
        + "<h2>Perturbation statistics</h2><p class=\"muted\">As measured on the protected training set, per "
          "board and seed (the same protected set serves every countermeasure).</p>" + table
        + "<h2 id=\"gallery\">Gallery</h2>" + _gallery_section(label, galleries)
        + "<h2>Boards</h2><ul>" + "".join(f"<li><a href=\"{_e(f)}\">{_e(k)}</a></li>" for f, k in boards) + "</ul>"
    ))


def _agreement_html(a: Agreement) -> str:
    """The agreement figures (benchmark.agreement) and the reference cells left out, as HTML tables."""
    f, met, iv = a.figures, a.met(), a.intervals

    def span(key: str, fmt: str) -> str:
        low, high = iv.get(key, (math.nan, math.nan))
        return "" if math.isnan(low) else f"{format(low, fmt)}–{format(high, fmt)}"

    figures = [
        ("verdicts agree (judged cells)", f"{f.agree} / {f.judged}" + (f" = {f.verdicts:.0%}" if f.judged else ""),
         span("verdicts", ".0%"), f"≥ {TARGETS['verdicts']:.0%}", met["verdicts"]),
        (f"Spearman of the shares ({f.spearman_cells} cells)", f"{f.spearman:.2f}", span("spearman", ".2f"),
         f"≥ {TARGETS['spearman']}", met["spearman"]),
        ("efficacy gap", f"{f.efficacy_gap:.2f} ({f.gap_method})" if f.gap_method else "–",
         span("efficacy_gap", ".2f"), f"≤ {TARGETS['efficacy_gap']}", met["efficacy_gap"]),
        ("seeds per cell (fewest)", str(a.seeds), "", f"≥ {TARGETS['seeds']}", met["seeds"]),
    ]
    table = ("<table id=\"agreement\"><thead><tr><th>figure</th><th>value</th><th>95 % interval over seeds</th>"
             "<th>target</th><th>met</th></tr></thead><tbody>"
             + "".join(f"<tr><td>{_e(n)}</td><td class=\"num\">{_e(v)}</td><td class=\"num\">{_e(i)}</td>"
                       f"<td>{_e(t)}</td><td>{'yes' if ok else '<strong>no</strong>'}</td></tr>"
                       for n, v, i, t, ok in figures)
             + "</tbody></table>")
    excluded = ("" if not a.excluded else
                f"<details><summary>{len(a.excluded)} reference cells excluded (other settings or not run)</summary>"
                "<ul>" + "".join(f"<li>{_e(c.method)} × {_e(c.countermeasure)}: {_e(c.excluded)}</li>"
                                 for c in a.excluded) + "</ul></details>")
    return f"<h3>Agreement with the reference</h3>{table}{excluded}"


def compare_page(boards: list[Leaderboard], files: list[str], reference: str | os.PathLike) -> str:
    """Per board: our cells beside the reference's, and the protocol's facts checked (benchmark.compare)."""
    from .compare import compare, read_reference

    table = read_reference(reference)  # reference cells
    sections = []
    for board, file in zip(boards, files):
        title = f"<h2><a href=\"{_e(file)}\">{_e(board.title)}</a></h2>"
        try:
            with warnings.catch_warnings():  # the board's own warnings were given when it was built
                warnings.simplefilter("ignore")
                result = compare(board.rows, table)
        except ValueError as exc:
            sections.append(f"{title}<p class=\"note\">not compared: {_e(exc)}</p>")
            continue
        ours = result.cells  # benchmark.compare's own text: ours (reference)
        cells = ("<table id=\"compare-cells\"><thead><tr><th>method</th>"
                 + "".join(f"<th>{_e(c)}</th>" for c in ours.columns) + "</tr></thead><tbody>"
                 + "".join(f"<tr><th scope=\"row\">{_e(m)}</th>"
                           + "".join(f"<td class=\"num\">{_e(ours.at[m, c])}</td>" for c in ours.columns) + "</tr>"
                           for m in ours.index)
                 + "</tbody></table>")
        facts = ("<table id=\"facts\" class=\"sortable\"><thead><tr>"
                 + "".join(f"<th data-type=\"text\">{_e(c)}</th>" for c in result.facts.columns)
                 + "</tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in record) + "</tr>"
                           for record in result.facts.itertuples(index=False))
                 + "</tbody></table>")
        sections.append(
            f"{title}{_agreement_html(result.agreement)}"
            "<p>Final clean test accuracy (%), ours (reference in brackets where it has the cell).</p>"
            f"<div class=\"wrap\">{cells}</div><h3>Qualitative facts: {result.reproduced} of {result.checked} "
            f"reproduced" + (f", {result.uncertain} uncertain" if result.uncertain else "") + "</h3>"
            "<p class=\"muted\">Each cell: seed-mean accuracy under <code>none</code> → under the countermeasure "
            "(share of the method's damage won back). See docs/compare.md for the rules.</p>" + facts)
    return _page("Comparison with the reference", (
        f"<h1>Comparison with <code>{_e(Path(reference).name)}</code></h1>" + "".join(sections)))


def frontier_page(board: Leaderboard, table: pd.DataFrame, picture: str) -> str:
    """A board's strength ladders: the accuracy-against-PSNR plot, the reading at matched PSNR and every
    configuration (sortable)."""
    shown = [m for m in dict.fromkeys(table["method"]) if m != "clean"]

    def num(value: float, digits: int = 1) -> str:
        if pd.isna(value):
            return "<td class=\"num\" data-value=\"\">–</td>"
        key, text = ("1e9", "∞") if math.isinf(value) else (f"{value:.4f}", f"{value:.{digits}f}")
        return f"<td class=\"num\" data-value=\"{key}\">{text}</td>"

    reading = "".join(f"<tr><th scope=\"row\" data-text=\"{_e(m)}\">{_e(m)}</th>"
                      + "".join(num(read_at(table, m, p)) for p in READ_AT) + "</tr>" for m in shown)
    configs = "".join(
        f"<tr><th scope=\"row\" data-text=\"{_e(r.label)}\">{_e(r.label)}</th>"
        + f"<td data-text=\"{_e(r.knob)}\">{_e(f'{r.knob}={r.value:g}' if r.knob else '')}</td>"
        + num(r.psnr) + num(r.ssim, 3) + num(r.none) + num(r.worst) + num(r.mean)
        + f"<td class=\"num\" data-value=\"{r.seeds}\">{r.seeds}</td></tr>" for r in table.itertuples())
    heads = "".join(f"<th data-type=\"number\" scope=\"col\">worst at {p:g} dB</th>" for p in READ_AT)
    columns = per_column(table)
    each = "".join(
        f"<h3>{p:g} dB</h3><table id=\"each-{p:g}\" class=\"sortable\"><thead><tr><th data-type=\"text\">method</th>"
        + "".join(f"<th data-type=\"number\" scope=\"col\">{_e(c)}</th>" for c in columns) + "</tr></thead><tbody>"
        + "".join(f"<tr><th scope=\"row\" data-text=\"{_e(m)}\">{_e(m)}</th>"
                  + "".join(num(read_at(table, m, p, PER_COLUMN + c)) for c in columns) + "</tr>" for m in shown)
        + "</tbody></table>" for p in READ_AT)
    return _page(f"Frontier: {board.title}", (
        f"<h1>Frontier: {_e(board.title)}</h1><p>Each method at a ladder of strengths aimed at target PSNRs "
        "(<code>python -m benchmark frontier</code>): clean test accuracy (%) under the worst countermeasure of the "
        "board and on average, against the PSNR each protected set actually has; bars span the seeds. Lower "
        "protects more; to the left, less visible.</p>"
        f"<p><img src=\"{_e(picture)}\" alt=\"accuracy against PSNR\" style=\"max-width:100%\"></p>"
        "<h2>Worst case at matched PSNR</h2><p>Read off each curve, linearly between the two ladder points around the "
        "PSNR; – outside the range the ladder reached.</p>"
        f"<table id=\"reading\" class=\"sortable\"><thead><tr><th data-type=\"text\">method</th>{heads}</tr></thead>"
        f"<tbody>{reading}</tbody></table><h2>Each countermeasure at matched PSNR</h2><p>Each column read off the "
        "same way from each configuration's mean over the seeds that ran it.</p>" + each
        + "<h2>Every configuration</h2>"
        "<table id=\"configurations\" class=\"sortable\"><thead><tr><th data-type=\"text\">configuration</th>"
        "<th data-type=\"text\">knob</th><th data-type=\"number\">PSNR (dB)</th><th data-type=\"number\">SSIM</th>"
        "<th data-type=\"number\">none</th><th data-type=\"number\">worst</th><th data-type=\"number\">mean</th>"
        f"<th data-type=\"number\">seeds</th></tr></thead><tbody>{configs}</tbody></table>"))


def _leaders(board: Leaderboard, count: int = 3) -> str:
    """The board's strongest methods by `worst` (the clean row aside), with their PSNR: `tap 52.4 (31.7 dB)`."""
    visible = board.perceptibility
    ranked = [(m, w) for m, w in board.mean["worst"].dropna().sort_values(kind="stable").items()
              if visible.at[m, "class"] != "reference"][:count]
    return ", ".join(f"{m} {w:.1f}" + ("" if pd.isna(visible.at[m, "psnr"]) else f" ({visible.at[m, 'psnr']:.1f} dB)")
                     for m, w in ranked)


def index_page(boards: list[Leaderboard], files: list[str], method_files: dict[str, str], with_compare: bool,
               frontier_files: dict[str, str] | None = None) -> str:
    rows = []
    for board, file in zip(boards, files):
        counts = board.seeds.to_numpy()[board.status.to_numpy() == OK]
        seeds = f"{counts.min()}–{counts.max()}" if counts.size and counts.min() != counts.max() else \
            str(counts.max() if counts.size else 0)
        cms = [c for c in board.mean.columns if c not in SUMMARY_COLUMNS]
        rows.append(
            f"<tr><td>{_e(board.dataset)}</td><td>{_e(board.preset_label)}"
            + (" <span class=\"muted\">(plumbing only)</span>" if plumbing_only(board.preset) else "")
            + f"</td><td>{_e(board.model)}</td>"
            f"<td class=\"num\" data-value=\"{board.poison_ratio!r}\">{board.poison_ratio:.0%}</td>"
            f"<td class=\"num\" data-value=\"{counts.max() if counts.size else 0}\">{seeds}</td>"
            f"<td class=\"num\" data-value=\"{len(board.mean.index)}\">{len(board.mean.index)}</td>"
            f"<td class=\"num\" data-value=\"{len(cms)}\">{len(cms)}</td>"
            f"<td data-text=\"{_e(_leaders(board))}\">{_e(_leaders(board))}</td>"
            f"<td><a href=\"{_e(file)}\">board</a></td></tr>")
    boards_table = (
        "<table id=\"boards\" class=\"sortable\"><thead><tr><th data-type=\"text\">dataset</th>"
        "<th data-type=\"text\">preset</th><th data-type=\"text\">victim</th>"
        "<th data-type=\"number\">poisoning ratio</th><th data-type=\"number\">seeds</th>"
        "<th data-type=\"number\">methods</th><th data-type=\"number\">countermeasures</th>"
        "<th data-type=\"text\">strongest by worst (%, PSNR)</th>"
        f"<th data-type=\"text\">page</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    methods = "".join(f"<li><a href=\"{_e(f)}\">{_e(label)}</a></li>" for label, f in method_files.items())
    return _page("uebench results", (
        "<h1>uebench results</h1><p>Leaderboards of unlearnable-example methods against countermeasures, rendered "
        "from result rows by <code>python -m benchmark site</code>.</p><h2>Leaderboards</h2>" + boards_table
        + f"<h2>Methods</h2><ul id=\"methods\">{methods}</ul>"
        + ("<h2>Comparison</h2><p><a href=\"compare.html\">our cells beside the reference, and the protocol's "
           "facts checked</a></p>" if with_compare else "")
        + ("<h2>Frontier</h2><ul id=\"frontiers\">" + "".join(
            f"<li><a href=\"{_e(f)}\">accuracy against PSNR: {_e(title)}</a></li>" for title, f in frontier_files.items())
           + "</ul>" if frontier_files else "")))


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
            entries[_method_key(row)].append((board, file, row))
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
