"""Method × countermeasure tables rendered from result rows: CSV, Markdown and a heatmap PNG."""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..identity import digest, flatten
from ..presets import plumbing_only
from ..registry import countermeasures, methods
from ..store.rows import read_rows
from .perceptibility import COLUMNS as MEASURES
from .perceptibility import (
    HEADERS,
    class_order,
    class_ranks,
    measure_text,
    perceptibility,
)

SUMMARY_COLUMNS = ("worst", "mean")
MEASURE_COLUMNS = ("psnr_db", "ssim", "linf_255", "l2", "threat", "budget_class", "class_rank")  # the CSV's budget columns
OK, FAILED, MISSING = "ok", "failed", "missing"
UNSTABLE_SPREAD = 10.0  # points between a cell's lowest and highest seed above which it is flagged unstable
UNSTABLE_MARK = "†"

# Fields a row must carry (as str, `seed` as int) to be placed on a board, by schema version; schema-1
# rows predate the ids and labels, which are derived from the names and parameters instead.
_SCHEMA1_FIELDS = ("cell_id", "status", "dataset", "preset", "model", "method", "countermeasure")
_SCHEMA2_FIELDS = (*_SCHEMA1_FIELDS, "preset_id", "method_id", "method_label", "countermeasure_id",
                   "countermeasure_label")
_BOARD_KEY = ("dataset", "preset", "preset_id", "model", "poison_ratio")


@dataclass
class Leaderboard:
    """Final clean test accuracy (%) per method configuration × countermeasure configuration."""

    dataset: str
    preset: str
    preset_id: str
    model: str
    mean: pd.DataFrame  # seed means by label, then `worst` (max) and `mean` over the cells with an ok row
    std: pd.DataFrame  # spread over seeds (ddof 0)
    seeds: pd.DataFrame  # distinct seeds with an ok row (0 where none)
    low: pd.DataFrame  # lowest seed per cell; its `worst`/`mean` bound the summaries from below
    high: pd.DataFrame  # highest seed per cell; its `worst`/`mean` bound the summaries from above
    accs: dict[tuple[str, str], dict[int, float]]  # (method label, countermeasure label) → seed → accuracy
    status: pd.DataFrame  # "ok", "failed" (rows, none ok) or "missing" (no row) per cell
    rows: list[dict[str, Any]]  # the rows shown, in table order: per cell id its latest ok row, else latest failed
    preset_label: str  # the preset name, with `@` and a short id when another preset_id shares the name
    provenance: list[str]  # one sentence per mixed commit, dirty checkout or library versions; empty when uniform
    # per method: threat model, PSNR, SSIM, L∞, L2 of its protected sets, budget class and rank by `worst` in it
    perceptibility: pd.DataFrame
    poison_ratio: float = 1.0  # the share of the training set the methods protected

    @property
    def unstable(self) -> pd.DataFrame:
        """Cells whose seeds disagree by more than UNSTABLE_SPREAD points (countermeasure columns only)."""
        cols = [c for c in self.mean.columns if c not in SUMMARY_COLUMNS]
        return (self.high[cols] - self.low[cols]) > UNSTABLE_SPREAD

    def seed_table(self, seed: int) -> pd.DataFrame:
        """Method × countermeasure accuracies (%) of one seed (NaN where that seed has no ok row)."""
        cols = [c for c in self.mean.columns if c not in SUMMARY_COLUMNS]
        return pd.DataFrame([[self.accs.get((m, c), {}).get(seed, np.nan) for c in cols] for m in self.mean.index],
                            index=self.mean.index, columns=cols, dtype=float)

    def ranking(self) -> list[tuple[str, float, float, float, bool]]:
        """Methods by `worst` (strongest first): (label, worst, its lower and upper bound over seeds, whether its
        bounds overlap the next method's, i.e. the two are not distinguishable at these seeds)."""
        order = self.mean["worst"].dropna().sort_values(kind="stable").index
        ranked = [(m, float(self.mean.at[m, "worst"]), float(self.low.at[m, "worst"]), float(self.high.at[m, "worst"]))
                  for m in order]
        return [(*r, i + 1 < len(ranked) and ranked[i + 1][2] <= r[3]) for i, r in enumerate(ranked)]

    @property
    def incomplete(self) -> pd.Series:
        """Per method row: whether a cell failed or is missing, so `worst` is only a lower bound."""
        return (self.status != OK).any(axis=1)

    @property
    def title(self) -> str:
        """Dataset, preset, victim and the range of seed counts over the cells shown."""
        counts = self.seeds.to_numpy()[self.status.to_numpy() == OK]
        low, high = (int(counts.min()), int(counts.max())) if counts.size else (0, 0)
        seeds = f"{low}–{high} seeds" if low != high else f"{high} seed{'s' if high != 1 else ''}"
        ratio = "" if self.poison_ratio == 1.0 else f" · {self.poison_ratio:.0%} protected"
        return f"{self.dataset} · preset {self.preset_label} · victim {self.model}{ratio} · {seeds}"


def _digest(*parts: Any) -> str:
    """A 64-hex SHA-256 of the parts as canonical JSON."""
    return digest(list(parts))


def _accuracy(row: dict[str, Any]) -> float | None:
    """The row's accuracy in %, or None when it counts as a failed cell (failed, or no finite value in [0, 1])."""
    acc = row.get("final_acc")
    if row["status"] != OK or isinstance(acc, bool) or not isinstance(acc, (int, float)):
        return None
    return 100 * acc if math.isfinite(acc) and 0 <= acc <= 1 else None


def _entry(row: Any) -> tuple[dict[str, Any] | None, str]:
    """The board fields of one row (ids of schema-1 rows without parameters left None), or None and why not."""
    if not isinstance(row, dict):
        return None, f"not a JSON object: {str(row)[:40]!r}"
    schema = row.get("schema", 1)
    if schema not in (1, 2):
        return None, f"cell {row.get('cell_id')!r} has unknown schema {schema!r}"
    lacking = [f for f in (_SCHEMA2_FIELDS if schema == 2 else _SCHEMA1_FIELDS) if not isinstance(row.get(f), str)]
    if not isinstance(row.get("seed"), int) or isinstance(row.get("seed"), bool):
        lacking.append("seed")
    if lacking:
        return None, f"cell {row.get('cell_id')!r} lacks {', '.join(lacking)}"
    if row["status"] not in (OK, FAILED):
        return None, f"cell {row['cell_id']!r} has status {row['status']!r}"
    ratio = row.get("poison_ratio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        return None, f"cell {row['cell_id']!r} has poison_ratio {ratio!r}"
    entry = {f: row[f] for f in (*_SCHEMA1_FIELDS, "seed")} | {"row": row, "acc": _accuracy(row), "poison_ratio": ratio}
    if schema == 2:
        return entry | {f: row[f] for f in _SCHEMA2_FIELDS}, ""
    preset = row.get("preset_config")
    entry["preset_id"] = _digest({k: v for k, v in preset.items() if k != "summary"}) if isinstance(preset, dict) else None
    for kind in ("method", "countermeasure"):
        params = row.get(f"{kind}_params")
        entry[f"{kind}_id"] = _digest(row[kind], params) if isinstance(params, dict) else None
        entry[f"{kind}_label"] = row[kind]
    return entry, ""


def _adopt_ids(entries: list[dict[str, Any]], field: str, scope: tuple[str, ...]) -> None:
    """Fill a None `field` (schema-1 failed rows carry no parameters) with the one id its scope knows,
    else with a digest of the scope."""
    known: dict[tuple, set[str]] = defaultdict(set)
    for e in entries:
        if e[field] is not None:
            known[tuple(e[f] for f in scope)].add(e[field])
    for e in entries:
        if e[field] is None:
            key = tuple(e[f] for f in scope)
            e[field] = next(iter(known[key])) if len(known[key]) == 1 else _digest(*key)


def _entries(rows: list[Any]) -> list[dict[str, Any]]:
    """Every placeable row as board fields, in file order; the others are skipped with one warning."""
    entries, skipped = [], []
    for row in rows:
        entry, why = _entry(row)
        if entry is None:
            skipped.append(why)
        else:
            entries.append(entry)
    if skipped:
        warnings.warn(f"leaderboard: skipped {len(skipped)} row(s) that name no cell: {'; '.join(skipped[:3])}"
                      + ("; …" if len(skipped) > 3 else ""), stacklevel=3)
    _adopt_ids(entries, "preset_id", ("dataset", "preset", "model"))
    _adopt_ids(entries, "method_id", (*_BOARD_KEY, "method"))
    _adopt_ids(entries, "countermeasure_id", (*_BOARD_KEY, "countermeasure"))
    return entries


def _shown(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell id the latest ok entry, else its latest failed one, in the order of those rows."""
    latest_ok, latest = {}, {}
    for position, e in enumerate(entries):
        latest[e["cell_id"]] = (position, e)
        if e["acc"] is not None:
            latest_ok[e["cell_id"]] = (position, e)
    return [e for _, e in sorted((latest | latest_ok).values(), key=lambda pair: pair[0])]


def _configurations(entries: list[dict[str, Any]], kind: str, first: str, registered: list[str]) -> dict[str, str]:
    """Configuration id → display label, in board order: `first`, then registry order of the base name
    (unknown names alphabetically), the default configuration before its labelled variants. A label
    that two ids share gets `@` and the id's first 6 hex digits."""
    configs = {e[f"{kind}_id"]: (e[kind], e[f"{kind}_label"]) for e in entries}
    rank = {n: i for i, n in enumerate(registered)}
    ordered = sorted(configs, key=lambda i: (configs[i][0] != first, rank.get(configs[i][0], len(rank)),
                                             configs[i][0], configs[i][1] != configs[i][0], configs[i][1], i))
    shared = Counter(label for _, label in configs.values())
    return {i: configs[i][1] if shared[configs[i][1]] == 1 else f"{configs[i][1]}@{i[:6]}" for i in ordered}


def flat_versions(versions: Any) -> dict[str, str]:
    """A (nested) versions dict as dotted key → text, so a difference names the exact entry; {} if no dict."""
    return {k: str(v) for k, v in flatten(versions).items() if v != {}}


def _provenance(rows: list[dict[str, Any]]) -> list[str]:
    """Sentences on what makes the rows not comparable: several commits, a dirty checkout, other libraries."""
    notes = []
    commits = Counter(str(r.get("git_commit") or "unknown") for r in rows)
    if len(commits) > 1:
        listed = ", ".join(f"{c[:7]} ({n} row{'s' if n != 1 else ''})" for c, n in commits.most_common())
        notes.append(f"rows come from {len(commits)} git commits: {listed}")
    dirty = sum(r.get("git_dirty") is True for r in rows)
    if dirty:
        notes.append(f"{dirty} row{'s come' if dirty != 1 else ' comes'} from a checkout with uncommitted changes")
    carried = sum(bool(r.get("carried_from")) for r in rows)
    if carried:
        notes.append(f"{carried} of {len(rows)} rows were taken from earlier rows (their `carried_from`) instead of "
                     "computed in this run folder")
    machines = Counter(" ".join(f"{k}={v}" for k, v in sorted(r["machine"].items()) if k in ("cpu_id", "isa", "onednn"))
                       for r in rows if isinstance(r.get("machine"), dict) and r["machine"])
    if len(machines) > 1:
        listed = ", ".join(f"{m} ({n} row{'s' if n != 1 else ''})" for m, n in machines.most_common())
        notes.append(f"rows come from {len(machines)} machines whose CPU kernels may differ: {listed}")
    versions = [flat_versions(r.get("versions")) for r in rows]
    # a plugin is compared between the rows it made only (older rows list every installed plugin); a library
    # missing from some rows is itself a difference
    keys = sorted({k for v in versions for k in v})
    differing = {k: sorted({str(v[k]) if k in v else "absent" for v in versions if k in v or not k.startswith("plugins.")})
                 for k in keys}
    differing = {k: values for k, values in differing.items() if len(values) > 1}
    if differing:
        listed = "; ".join(f"{k} ({', '.join(values)})" for k, values in differing.items())
        notes.append(f"library versions differ between rows: {listed}")
    return notes


def _board(entries: list[dict[str, Any]], preset_label: str) -> Leaderboard:
    """One board from the shown entries of one (dataset, preset, preset_id, model)."""
    row_labels = _configurations(entries, "method", "clean", methods.names())
    col_labels = _configurations(entries, "countermeasure", "none", countermeasures.names())
    accs: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    tried = set()
    for e in entries:  # file order, so a later row of a seed replaces an earlier one
        cell = (e["method_id"], e["countermeasure_id"])
        tried.add(cell)
        if e["acc"] is not None:
            accs[cell][e["seed"]] = e["acc"]

    def frame(value: Callable[[tuple[str, str]], Any], dtype: Any) -> pd.DataFrame:
        return pd.DataFrame([[value((m, c)) for c in col_labels] for m in row_labels], dtype=dtype,
                            index=pd.Index(row_labels.values(), name="method"), columns=list(col_labels.values()))

    mean = frame(lambda cell: np.mean(list(accs[cell].values())) if cell in accs else np.nan, float)
    std = frame(lambda cell: np.std(list(accs[cell].values())) if cell in accs else np.nan, float)
    low = frame(lambda cell: min(accs[cell].values()) if cell in accs else np.nan, float)
    high = frame(lambda cell: max(accs[cell].values()) if cell in accs else np.nan, float)
    seeds = frame(lambda cell: len(accs.get(cell, ())), int)
    status = frame(lambda cell: OK if cell in accs else FAILED if cell in tried else MISSING, object)
    cols = list(col_labels.values())
    for table in (mean, low, high):
        table["worst"] = table[cols].max(axis=1)
        table["mean"] = table[cols].mean(axis=1)
    row_rank, col_rank = {i: n for n, i in enumerate(row_labels)}, {i: n for n, i in enumerate(col_labels)}
    shown = sorted(entries, key=lambda e: (row_rank[e["method_id"]], col_rank[e["countermeasure_id"]], e["seed"]))
    rows = [e["row"] for e in shown]
    first = entries[0]
    labelled = {(row_labels[m], col_labels[c]): dict(seeds_of) for (m, c), seeds_of in accs.items()}
    visible = perceptibility([(row_labels[e["method_id"]], e["row"]) for e in shown]).reindex(mean.index)
    visible["rank"] = class_ranks(visible, mean["worst"])
    return Leaderboard(first["dataset"], first["preset"], first["preset_id"], first["model"], mean, std, seeds, low,
                       high, labelled, status, rows, preset_label, _provenance(rows), visible, first["poison_ratio"])


def build_leaderboards(rows: list[dict[str, Any]]) -> list[Leaderboard]:
    """One leaderboard per (dataset, preset, preset_id, model); rows that name no cell are skipped with a
    warning, and a board whose rows mix commits, dirty checkouts or library versions warns too."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for e in _shown(_entries(rows)):
        groups[tuple(e[f] for f in _BOARD_KEY)].append(e)
    ids_per_name = Counter(name for name, _ in {(k[1], k[2]) for k in groups})
    boards = []
    for (_, preset, preset_id, _, _), entries in groups.items():
        board = _board(entries, f"{preset}@{preset_id[:6]}" if ids_per_name[preset] > 1 else preset)
        for note in board.provenance:
            warnings.warn(f"leaderboard {board.title}: {note}", stacklevel=2)
        boards.append(board)
    return boards


def cell_text(board: Leaderboard, frame: pd.DataFrame, missing: str, spread: bool = False) -> pd.DataFrame:
    """`frame` as text: `failed`, or `missing` for a cell without a row, `*` on an incomplete row's summaries and
    † on an unstable cell; with `spread`, a cell of several seeds gets `± std` and a summary its [low–high] bounds."""
    status = board.status.reindex(columns=frame.columns, fill_value=OK)
    unstable = board.unstable.reindex(columns=frame.columns, fill_value=False)
    incomplete = board.incomplete
    several = board.seeds.max().max() > 1

    def text(i: int, j: int, v: float) -> str:
        method, column = frame.index[i], frame.columns[j]
        if status.iat[i, j] == FAILED:
            return FAILED
        if status.iat[i, j] == MISSING or pd.isna(v):
            return missing
        out = f"{v:.1f}"
        if spread and several and column in SUMMARY_COLUMNS:
            out += f" [{board.low.at[method, column]:.1f}–{board.high.at[method, column]:.1f}]"
        elif spread and column not in SUMMARY_COLUMNS and board.seeds.at[method, column] > 1:
            out += f" ± {board.std.at[method, column]:.1f}"
        return out + ("*" if incomplete.iat[i] and column in SUMMARY_COLUMNS else "") \
            + (UNSTABLE_MARK if unstable.iat[i, j] else "")

    values = frame.round(1).to_numpy(dtype=float)
    return pd.DataFrame([[text(i, j, v) for j, v in enumerate(row)] for i, row in enumerate(values)],
                        index=frame.index, columns=frame.columns)


def _table(board: Leaderboard, frame: pd.DataFrame, spread: bool = False) -> str:
    """`frame` as a Markdown table, numbers right-aligned, then each method's measured perceptibility."""
    text = cell_text(board, frame, missing="–", spread=spread).join(_measures_text(board))
    return text.to_markdown(disable_numparse=True, colalign=("left",) + ("right",) * text.shape[1])


def _measures_text(board: Leaderboard) -> pd.DataFrame:
    """PSNR, SSIM, L∞ and L2 per method as text (`∞` for an unchanged set, `–` where unmeasured)."""
    table = board.perceptibility
    return pd.DataFrame({HEADERS[c]: [measure_text(c, float(v)) for v in table[c]] for c in MEASURES}, index=table.index)


def _classes(board: Leaderboard) -> str:
    """Per budget class, its methods by `worst` with their threat model and PSNR, as Markdown."""
    table = board.perceptibility
    blocks = []
    for name in class_order()[:-2]:
        members = table[table["class"] == name].sort_values("rank", kind="stable")
        if members.empty:
            continue
        lines = [f"{int(r['rank']) if not pd.isna(r['rank']) else '–'}. `{m}`: worst "
                 f"{board.mean.at[m, 'worst']:.1f} · {r['psnr']:.1f} dB · {r['threat']}" for m, r in members.iterrows()]
        blocks.append(f"**{name}**\n\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def measures_table(board: Leaderboard) -> pd.DataFrame:
    """Each method's perceptibility, threat model, budget class and rank in class, as the CSV's columns."""
    visible = board.perceptibility.rename(columns={"psnr": "psnr_db", "linf": "linf_255", "class": "budget_class",
                                                   "rank": "class_rank"})
    return visible[list(MEASURE_COLUMNS)]


def _ranges(board: Leaderboard) -> str:
    """Per cell the lowest and highest seed, as a Markdown table."""
    cols = [c for c in board.mean.columns if c not in SUMMARY_COLUMNS]
    text = pd.DataFrame(
        [["–" if pd.isna(board.low.at[m, c]) else f"{board.low.at[m, c]:.1f}–{board.high.at[m, c]:.1f}"
          + (UNSTABLE_MARK if board.unstable.at[m, c] else "") for c in cols] for m in board.mean.index],
        index=board.mean.index, columns=cols)
    return text.to_markdown(disable_numparse=True, colalign=("left",) + ("right",) * text.shape[1])


def _ranking(board: Leaderboard) -> str:
    """Methods by `worst`, strongest first, with the bounds over seeds; overlapping neighbours are marked."""
    lines = []
    for i, (method, worst, low, high, ties_next) in enumerate(board.ranking()):
        lines.append(f"{i + 1}. `{method}`: worst {worst:.1f} (seeds bound it to {low:.1f}–{high:.1f})"
                     + (" ≈ not distinguishable from the next at these seeds" if ties_next else ""))
    return "\n".join(lines)


def _markdown(board: Leaderboard) -> str:
    """The board's page: title, notes, the table (± std over seeds) with its footnotes, and with several
    seeds the min–max per cell and the ranking by `worst` with its uncertainty."""
    notes = "".join(f"> - {note}\n" for note in board.provenance)
    several = board.seeds.max().max() > 1
    footnotes = "".join([
        "\n\\* Incomplete row: a cell `failed` or is missing (`–`), so `worst` is only a lower bound on the "
        "method's true worst case and `mean` averages the cells present.\n" if board.incomplete.any() else "",
        f"\n{UNSTABLE_MARK} Unstable cell: its seeds disagree by more than {UNSTABLE_SPREAD:g} points.\n"
        if board.unstable.any().any() else "",
        "\nCells: seed mean ± standard deviation; `worst` and `mean`: value [lowest–highest it could be at "
        "these seeds], from the per-cell lowest and highest seeds.\n" if several else "",
    ])
    return (
        f"# Leaderboard: {board.title}\n\n"
        "Final clean test accuracy (%) of a victim trained on the protected set with each countermeasure; "
        "lower is stronger protection. `worst` is the max over countermeasures (a method's rank), "
        "`mean` the average. Rows come from results.jsonl; regenerate with `python -m benchmark leaderboard`.\n\n"
        + (f"> Preset `{board.preset}`: these numbers test the plumbing only (a tiny victim, a few epochs); "
           "they say nothing about the methods. Use `--preset quick` or `paper` for results.\n\n"
           if plumbing_only(board.preset) else "")
        + (f"> **Mixed provenance**: these rows may not be comparable.\n>\n{notes}\n" if notes else "")
        + f"{_table(board, board.mean, spread=True)}\n{footnotes}"
        + "\nPSNR, SSIM, L∞ and L2 (mean per image, [0,1] pixel units) measure the protected training set against "
          "the clean one, averaged over seeds.\n"
        + f"\n## Rank within budget class\n\nMethods are classed by the measured PSNR of their protected sets; a "
          "rank compares methods of one class. Between classes, `worst` compares perturbation sizes as much as "
          f"robustness: read across classes only with that said.\n\n{_classes(board)}\n"
        # one seed has no spread to show; a table of zeros would read as perfect agreement
        + (f"\n## Range over seeds (lowest–highest)\n\n{_ranges(board)}\n"
           f"\n## Ranking by worst\n\n{_ranking(board)}\n" if several else "")
    )


def cell_table(board: Leaderboard) -> pd.DataFrame:
    """One row per method × countermeasure: status, seeds, mean, std, min, max and the unstable flag (tidy, for
    plotting)."""
    cols = [c for c in board.mean.columns if c not in SUMMARY_COLUMNS]
    records = []
    for m in board.mean.index:
        for c in cols:
            n = int(board.seeds.at[m, c])
            records.append({
                "method": m, "countermeasure": c, "status": board.status.at[m, c], "seeds": n,
                "mean": board.mean.at[m, c], "std": board.std.at[m, c] if n > 1 else np.nan,
                "min": board.low.at[m, c], "max": board.high.at[m, c], "unstable": bool(board.unstable.at[m, c]),
            })
    return pd.DataFrame(records)


def _heatmap(board: Leaderboard, path: Path) -> None:
    """The table as a PNG heatmap; cells without an ok row are grey and say why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = board.mean
    values = data.to_numpy(dtype=float)
    text = cell_text(board, data, missing=MISSING)
    fig, ax = plt.subplots(figsize=(1.5 + 0.75 * data.shape[1], 2.2 + 0.45 * data.shape[0]))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="lightgrey")
    finite = values[np.isfinite(values)]
    # the colour scale spans the numbers shown (to the next 5 points), so 10 % and 30 % do not look alike
    low, high = (5 * math.floor(finite.min() / 5), 5 * math.ceil(finite.max() / 5)) if finite.size else (0, 100)
    high = max(high, low + 5)
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j]
            dark = not math.isnan(value) and value < (low + high) / 2
            summary = data.columns[j] in SUMMARY_COLUMNS
            ax.text(j, i, text.iat[i, j], ha="center", va="center", color="white" if dark else "black", fontsize=8,
                    fontweight="bold" if summary else "normal")
    summaries = sum(c in SUMMARY_COLUMNS for c in data.columns)
    if summaries:  # a gap between the countermeasures and the summaries over them
        ax.axvline(data.shape[1] - summaries - 0.5, color="white", linewidth=4)
    ax.set_xticks(range(data.shape[1]), data.columns, rotation=45, ha="right")
    psnr = board.perceptibility["psnr"]
    ax.set_yticks(range(data.shape[0]), [m if pd.isna(psnr.get(m)) or math.isinf(psnr[m]) else f"{m} · {psnr[m]:.1f} dB"
                                         for m in data.index])
    notes = (["* incomplete row (grey cells): worst is only a lower bound"] if board.incomplete.any() else []) + (
        [f"{UNSTABLE_MARK} unstable: seeds disagree by more than {UNSTABLE_SPREAD:g} points"]
        if board.unstable.any().any() else [])
    if notes:
        ax.set_xlabel("\n".join(notes), fontsize=8)
    ax.set_title(board.title + (" · plumbing only" if plumbing_only(board.preset) else ""), fontsize=9)
    fig.colorbar(im, ax=ax, label="clean test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ratio_plot(boards: list[Leaderboard], path: Path) -> None:
    """Accuracy under `none` against the poisoning ratio, one line per method, for boards that differ only in ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boards = sorted(boards, key=lambda b: b.poison_ratio)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in dict.fromkeys(m for b in boards for m in b.mean.index):
        points = [(100 * b.poison_ratio, b.mean.at[method, "none"]) for b in boards
                  if method in b.mean.index and "none" in b.mean.columns and not math.isnan(b.mean.at[method, "none"])]
        if points:
            ax.plot(*zip(*points), marker="o", label=method)
    ax.set_xlabel("protected share of the training set (%)")
    ax.set_ylabel("clean test accuracy under `none` (%)")
    ax.set_title(f"{boards[0].dataset} · preset {boards[0].preset_label} · victim {boards[0].model}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def transfer_tables(boards: list[Leaderboard]) -> list[tuple[Leaderboard, pd.DataFrame]]:
    """Per group of boards that differ only in the victim (two or more): accuracy (%) under `none`, method ×
    victim, with the group's first board (for its title)."""
    groups: dict[tuple, list[Leaderboard]] = defaultdict(list)
    for board in boards:
        groups[(board.dataset, board.preset_id, board.poison_ratio)].append(board)
    tables = []
    for group in groups.values():
        if len({b.model for b in group}) < 2:
            continue
        rows = list(dict.fromkeys(m for b in group for m in b.mean.index))
        table = pd.DataFrame(
            {b.model: [b.mean.at[m, "none"] if m in b.mean.index and "none" in b.mean.columns else np.nan
                       for m in rows] for b in group},
            index=pd.Index(rows, name="method"), dtype=float,
        )
        tables.append((group[0], table))
    return tables


def _transfer_markdown(board: Leaderboard, table: pd.DataFrame) -> str:
    ratio = "" if board.poison_ratio == 1.0 else f" · {board.poison_ratio:.0%} protected"
    text = table.round(1).map(lambda v: "–" if pd.isna(v) else f"{v:.1f}")
    return (
        f"# Transfer: {board.dataset} · preset {board.preset_label}{ratio}\n\n"
        "Final clean test accuracy (%) under `none` (standard training) of each victim trained on the same "
        "protected set; lower is stronger protection. `–`: no finished row. Each victim's full table is its own "
        "leaderboard file.\n\n"
        + text.to_markdown(disable_numparse=True, colalign=("left",) + ("right",) * text.shape[1]) + "\n"
    )


def safe_name(piece: str) -> str:
    """A file-name fragment: only [A-Za-z0-9._-], no run of dots, no leading or trailing dot."""
    text = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]", "_", piece)).strip(".")
    return text or "_"


def board_stems(boards: list[Leaderboard], name: str) -> list[str]:
    """NAME for one board, else NAME-dataset-preset-model, made unique with a key digest where sanitising collides."""
    if len(boards) == 1:
        return [name]
    stems = [f"{name}-{safe_name(b.dataset)}-{safe_name(b.preset_label)}-{safe_name(b.model)}"
             + ("" if b.poison_ratio == 1.0 else f"-ratio{b.poison_ratio:g}") for b in boards]
    taken = Counter(stems)
    return [s if taken[s] == 1 else f"{s}-{_digest(b.dataset, b.preset_id, b.model)[:6]}" for s, b in zip(stems, boards)]


def inside(out: Path, filename: str) -> Path:
    """OUT/filename, refused unless it resolves inside OUT."""
    path = out / filename
    if not path.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"refusing to write {path}: it resolves outside {out}")
    return path


def write_leaderboard(
    run_dirs: list[str | os.PathLike], out_dir: str | os.PathLike, name: str = "leaderboard", with_rows: bool = False
) -> list[Path]:
    """Render OUT/NAME.{csv,md,png} (+ NAME_status.csv, NAME_cells.csv with one tidy row per cell, and
    NAME_std.csv where a cell has several seeds) from
    the runs' rows, and with
    `with_rows` the rows rendered, one NAME.seedS.jsonl per seed; with several boards each file name
    gets a `-dataset-preset-model` suffix. Boards that differ only in the victim also give
    NAME_transfer.{csv,md}, and boards that differ only in the poisoning ratio NAME_ratios.png."""
    boards = build_leaderboards(read_rows(run_dirs))
    if not any((b.status == OK).any().any() for b in boards):
        raise ValueError(f"no finished (status ok) rows in {', '.join(map(str, run_dirs))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for board, stem in zip(boards, board_stems(boards, name)):
        parts = (".csv", "_std.csv", "_status.csv", "_cells.csv", ".md", ".png")
        if board.seeds.max().max() <= 1:  # one seed has no spread; a table of zeros would read as agreement
            parts = tuple(p for p in parts if p != "_std.csv")
        paths = {part: inside(out, f"{stem}{part}") for part in parts}
        board.mean.round(2).join(measures_table(board).round(3)).to_csv(paths[".csv"])
        if "_std.csv" in paths:
            board.std.round(2).to_csv(paths["_std.csv"])
        board.status.assign(incomplete=board.incomplete).to_csv(paths["_status.csv"])
        cell_table(board).round(2).to_csv(paths["_cells.csv"], index=False)
        paths[".md"].write_text(_markdown(board))
        _heatmap(board, paths[".png"])
        written += paths.values()
        if with_rows:
            for seed in sorted({r["seed"] for r in board.rows}):
                path = inside(out, f"{stem}.seed{seed}.jsonl")
                path.write_text("".join(json.dumps(r) + "\n" for r in board.rows if r["seed"] == seed))
                written.append(path)
    transfers = transfer_tables(boards)
    for board, table in transfers:
        suffix = "" if len(transfers) == 1 else (f"-{safe_name(board.dataset)}-{safe_name(board.preset_label)}"
                                                 + ("" if board.poison_ratio == 1.0 else f"-ratio{board.poison_ratio:g}"))
        paths = [inside(out, f"{name}_transfer{suffix}{ext}") for ext in (".csv", ".md")]
        table.round(2).to_csv(paths[0])
        paths[1].write_text(_transfer_markdown(board, table))
        written += paths
    sweeps: dict[tuple, list[Leaderboard]] = defaultdict(list)
    for board in boards:
        sweeps[(board.dataset, board.preset_id, board.model)].append(board)
    sweeps = {key: group for key, group in sweeps.items() if len(group) > 1}
    for (dataset, _, model), group in sweeps.items():
        suffix = "" if len(sweeps) == 1 else f"-{safe_name(dataset)}-{safe_name(group[0].preset_label)}-{safe_name(model)}"
        path = inside(out, f"{name}_ratios{suffix}.png")
        _ratio_plot(group, path)
        written.append(path)
    return written
