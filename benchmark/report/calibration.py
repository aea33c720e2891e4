"""A calibration study's view: several boards (one per lever setting) side by side with their agreement figures
and their measured cost per cell, as a table and a plot of agreement against cost."""
from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..store.rows import read_rows
from .agreement import TARGETS, ReferenceCell, agreement
from .compare import read_reference
from .leaderboard import Leaderboard, build_leaderboards


def step_seconds(victim: str, batch: int = 128, repeats: int = 5) -> float:
    """Median seconds of one training step (forward and backward of a 32×32 batch) of `victim` on one CPU thread."""
    import torch

    from ..models import create_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = create_model(victim, 10)
        x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
        times = []
        for _ in range(repeats + 1):
            start = time.perf_counter()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            times.append(time.perf_counter() - start)
        return float(np.median(times[1:]))  # the first pass allocates
    finally:
        torch.set_num_threads(threads)


def _work(board: Leaderboard) -> float:
    """Image passes of one standard cell: epochs × training images, from the rows."""
    row = next((r for r in board.rows if r.get("status") == "ok"), {})
    preset = (row.get("identity") or {}).get("preset") or {}
    return float(preset.get("epochs", math.nan)) * float(row.get("train_size") or math.nan)


def _cell_seconds(board: Leaderboard) -> float:
    """Mean training seconds of the board's `none` cells: its cost per standard cell on the machine that ran it."""
    seconds = [r["seconds"]["train"] for r in board.rows if r.get("countermeasure") == "none"
               and r.get("status") == "ok" and isinstance(r.get("seconds"), dict) and "train" in r["seconds"]]
    return float(np.mean(seconds)) if seconds else math.nan


def lever_table(runs: list[str | os.PathLike], reference: list[ReferenceCell], resamples: int = 200,
                base_hours: float | None = None) -> pd.DataFrame:
    """One line per run (a run folder or rows file, or `LABEL=PATH,PATH,...` for rows from several; each run one
    board): its label, seeds, measured seconds per standard
    cell, its cost (epochs × training images × the victim's step time, relative to the first run's), clean
    accuracy, each method's relative `none` accuracy and the agreement figures."""
    lines, steps = [], {}
    for run in runs:
        label, sep, rest = str(run).partition("=")
        if not sep or any(c in label for c in "/[\\"):  # a path that holds "=", not LABEL=...
            label, rest = "", str(run)
        paths = rest.split(",")
        with warnings.catch_warnings():  # provenance warnings belong to each run's own board
            warnings.simplefilter("ignore")
            boards = build_leaderboards(read_rows(paths))
        if len(boards) != 1:
            raise ValueError(f"{run}: a lever's rows must form one board; found {len(boards)}")
        (board,) = boards
        a = agreement(board, reference, resamples)
        f = a.figures
        if board.model not in steps:
            steps[board.model] = step_seconds(board.model)
        line = {"run": label or Path(paths[0]).name, "preset": board.preset_label, "victim": board.model,
                "seeds": a.seeds,
                "cell_seconds": _cell_seconds(board), "work": _work(board) * steps[board.model]}
        line["clean"] = float(board.mean.at["clean", "none"]) if "clean" in board.mean.index else math.nan
        line |= {f"rel_{m}": v for m, v in a.efficacy["ours"].items()}
        line |= {"efficacy_gap": f.efficacy_gap, "gap_method": f.gap_method, "gap_low": a.intervals["efficacy_gap"][0],
                 "gap_high": a.intervals["efficacy_gap"][1], "agree": f.agree, "judged": f.judged,
                 "verdicts": f.verdicts, "spearman": f.spearman, "spearman_cells": f.spearman_cells}
        lines.append(line)
    table = pd.DataFrame(lines)
    # Measured seconds depend on what else ran beside a cell; epochs × images × one step's time, measured here
    # for every victim back to back, does not.
    work = table.pop("work")
    table.insert(5, "cost", work / work.iloc[0])
    if base_hours is not None:
        table.insert(6, "cpu_hours", base_hours * table["cost"])
    return table


def lever_plot(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Efficacy gap (with its seed interval) and, where judged, verdict agreement against cost per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, xlabel = (("cpu_hours", "projected CPU-hours per seed of the full grid") if "cpu_hours" in table
                 else ("cost", "training work per cell (× the first run's)"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    err = np.array([table["efficacy_gap"] - table["gap_low"], table["gap_high"] - table["efficacy_gap"]])
    ax.errorbar(table[x], table["efficacy_gap"], yerr=np.nan_to_num(err), fmt="o", capsize=3)
    ax.set_xscale("log")
    ax.axhline(TARGETS["efficacy_gap"], ls="--", color="grey", label=f"target ≤ {TARGETS['efficacy_gap']}")
    ax.set(xlabel=xlabel, ylabel="efficacy gap (max |relative none|)",
           title="efficacy against cost")
    ax2 = axes[1]
    judged = table[table["judged"] > 0]
    ax2.plot(judged[x], judged["verdicts"], "o")
    ax2.set_xscale("log")
    ax2.axhline(TARGETS["verdicts"], ls="--", color="grey", label=f"target ≥ {TARGETS['verdicts']:.0%}")
    ax2.set(xlabel=xlabel, ylabel="verdicts agree (share of judged cells)",
            title="verdicts against cost", ylim=(0, 1.05))
    for a, frame in ((ax, table), (ax2, judged)):
        for _, line in frame.iterrows():
            y = line["efficacy_gap"] if a is ax else line["verdicts"]
            a.annotate(f"{line['run']}", (line[x], y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def lever_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown, rounded for reading."""
    shown = table.copy()
    for col in shown.columns:
        if shown[col].dtype.kind == "f":
            shown[col] = shown[col].round(1 if col == "cell_seconds" else 2)
    return shown.to_markdown(index=False)


def write_levers(runs: list[str | os.PathLike], reference_path: str | os.PathLike, resamples: int, base_hours: float,
                 out: str | os.PathLike | None, name: str) -> str:
    """The study's Markdown table; with `out`, also OUT/NAME.{md,csv,png}."""
    table = lever_table(runs, read_reference(reference_path), resamples, base_hours)
    text = lever_markdown(table)
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.md").write_text(text + "\n")
        table.to_csv(folder / f"{name}.csv", index=False)
        lever_plot(table, folder / f"{name}.png")
    return text
