"""A board's files: its Markdown (with budget classes, ranges and ranking), CSVs, heatmap, and the transfer and
ratio tables across boards."""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..identity import digest
from ..presets import plumbing_only
from ..store.rows import DETECTION_FILE, read_detection, read_rows
from .leaderboard import (
    DETECT_COLUMN, FAILED, MEASURE_COLUMNS, MISSING, OK, SUMMARY_COLUMNS, UNSTABLE_MARK, UNSTABLE_SPREAD, Leaderboard,
    attach_detection, build_leaderboards,
)
from .perceptibility import DETECT, HEADERS, class_order, measure_text, measures_of


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
            out += f" [{board.summary_low.at[method, column]:.1f}–{board.summary_high.at[method, column]:.1f}]"
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
    return pd.DataFrame({HEADERS[c]: [measure_text(c, float(v)) for v in table[c]] for c in measures_of(table)},
                        index=table.index)


def _classes(board: Leaderboard) -> str:
    """Per budget class, its methods by `worst` with their threat model and PSNR, as Markdown."""
    table = board.perceptibility
    blocks = []
    for name in class_order()[:-2]:
        members = table[table["class"] == name].sort_values("rank", kind="stable")
        if members.empty:
            continue
        lines = [f"{int(r['rank']) if not pd.isna(r['rank']) else '–'}. `{m}`: worst "
                 f"{board.summary.at[m, 'worst']:.1f} · {r['psnr']:.1f} dB · {r['threat']}" for m, r in members.iterrows()]
        blocks.append(f"**{name}**\n\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def measures_table(board: Leaderboard) -> pd.DataFrame:
    """Each method's perceptibility, threat model, budget class and rank in class (and detection AUROC, where the
    board has one), as the CSV's columns."""
    visible = board.perceptibility.rename(columns={"psnr": "psnr_db", "linf": "linf_255", "class": "budget_class",
                                                   "rank": "class_rank", DETECT: DETECT_COLUMN})
    return visible[[*MEASURE_COLUMNS, *([DETECT_COLUMN] if DETECT_COLUMN in visible.columns else [])]]


def _ranges(board: Leaderboard) -> str:
    """Per cell the lowest and highest seed, as a Markdown table."""
    cols = list(board.mean.columns)
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
        + (f"The columns after `mean` ({', '.join(f'`{c}`' for c in board.extra)}) are defences beyond the protocol "
           "(the `extra` suite): `worst` and `mean` leave them out, so a rank stays the protocol's.\n\n"
           if board.extra else "")
        + (f"> Preset `{board.preset}`: these numbers test the plumbing only (a tiny victim, a few epochs); "
           "they say nothing about the methods. Use `--preset quick` or `paper` for results.\n\n"
           if plumbing_only(board.preset) else "")
        + (f"> **Mixed provenance**: these rows may not be comparable.\n>\n{notes}\n" if notes else "")
        + f"{_table(board, board.table, spread=True)}\n{footnotes}"
        + "\nPSNR, SSIM, L∞ and L2 (mean per image, [0,1] pixel units) measure the protected training set against "
          "the clean one, averaged over seeds.\n"
        + ("\n`detect AUROC`: how well the best of two simple detectors on raw pixels tells the method's protected "
           "images from clean ones on held-out images (`python -m benchmark detect`; 0.5: not at all), mean over "
           "seeds.\n" if DETECT in board.perceptibility.columns else "")
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
    records = []
    for m in board.mean.index:
        for c in board.mean.columns:
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

    data = board.table
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
    return [s if taken[s] == 1 else f"{s}-{digest([b.dataset, b.preset_id, b.model])[:6]}" for s, b in zip(stems, boards)]


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
    `with_rows` the rows rendered, one NAME.seedS.jsonl per seed, and the boards' `detect` rows in detection.jsonl
    (where a board reads them back); with several boards each file name
    gets a `-dataset-preset-model` suffix. Boards that differ only in the victim also give
    NAME_transfer.{csv,md}, and boards that differ only in the poisoning ratio NAME_ratios.png."""
    boards = build_leaderboards(read_rows(run_dirs))
    detection = attach_detection(boards, read_detection(run_dirs))
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
        board.table.round(2).join(measures_table(board).round(3)).to_csv(paths[".csv"])
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
    if with_rows and detection:
        path = inside(out, DETECTION_FILE)
        path.write_text("".join(json.dumps(r) + "\n" for r in detection))
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
