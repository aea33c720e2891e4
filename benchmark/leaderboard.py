"""Method × countermeasure tables rendered from result rows: CSV, Markdown and a heatmap PNG."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .registry import countermeasures, methods
from .store import read_rows

SUMMARY_COLUMNS = ("worst", "mean")


@dataclass
class Leaderboard:
    """Final clean test accuracy (%) per method × countermeasure: seed mean, std and seed count."""

    dataset: str
    preset: str
    model: str
    mean: pd.DataFrame  # countermeasure columns, then `worst` (max) and `mean`
    std: pd.DataFrame
    seeds: pd.DataFrame

    @property
    def title(self) -> str:
        n = int(self.seeds.max().max()) if self.seeds.size else 0
        return f"{self.dataset} · preset {self.preset} · victim {self.model} · {n} seed{'s' if n != 1 else ''}"


def _order(names: Iterable[str], registered: list[str], first: str) -> list[str]:
    """`first`, then registry order, then names no installed plugin carries (alphabetically)."""
    rank = {n: i for i, n in enumerate(registered)}
    return sorted(set(names), key=lambda n: (n != first, rank.get(n, len(rank)), n))


def latest_ok_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a leaderboard shows: `ok` ones, the last row of a repeated cell."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.get("status") == "ok":
            latest[row["cell_id"]] = row
    return list(latest.values())


def build_leaderboards(rows: list[dict[str, Any]]) -> list[Leaderboard]:
    """One leaderboard per (dataset, preset, model) from `ok` rows; a repeated cell keeps its last row."""
    latest = latest_ok_rows(rows)
    if not latest:
        return []
    df = pd.DataFrame(
        [{k: r[k] for k in ("dataset", "preset", "model", "method", "countermeasure", "seed")}
         | {"acc": 100 * r["final_acc"]} for r in latest]
    )
    boards = []
    for (dataset, preset, model), group in df.groupby(["dataset", "preset", "model"], sort=False):
        cols = _order(group["countermeasure"], countermeasures.names(), first="none")
        index = _order(group["method"], methods.names(), first="clean")
        grouped = group.groupby(["method", "countermeasure"])["acc"]
        mean = grouped.mean().unstack().reindex(index=index, columns=cols)
        std = grouped.std(ddof=0).unstack().reindex(index=index, columns=cols)
        seeds = grouped.count().unstack().reindex(index=index, columns=cols)
        mean["worst"] = mean[cols].max(axis=1)
        mean["mean"] = mean[cols].mean(axis=1)
        for frame in (mean, std, seeds):
            frame.index.name = "method"
            frame.columns.name = None
        boards.append(Leaderboard(dataset, preset, model, mean, std, seeds))
    return boards


def _markdown(board: Leaderboard) -> str:
    fmt = lambda frame: frame.round(1).to_markdown(floatfmt=".1f", missingval="–")  # noqa: E731
    return (
        f"# Leaderboard: {board.title}\n\n"
        "Final clean test accuracy (%) of a victim trained on the protected set with each countermeasure; "
        "lower is stronger protection. `worst` is the max over countermeasures (a method's rank), "
        "`mean` the average. Rows come from results.jsonl; regenerate with `python -m benchmark leaderboard`.\n\n"
        f"{fmt(board.mean)}\n"
        # one seed has no spread to show; a table of zeros would read as perfect agreement
        + (f"\n## Standard deviation over seeds\n\n{fmt(board.std)}\n" if board.seeds.max().max() > 1 else "")
    )


def _heatmap(board: Leaderboard, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = board.mean
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * data.shape[1], 1.2 + 0.45 * data.shape[0]))
    im = ax.imshow(data.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(data.shape[1]), data.columns, rotation=45, ha="right")
    ax.set_yticks(range(data.shape[0]), data.index)
    for (i, j), value in pd.DataFrame(data.to_numpy(dtype=float)).stack().items():
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white" if value < 60 else "black", fontsize=8)
    ax.set_title(board.title, fontsize=9)
    fig.colorbar(im, ax=ax, label="clean test accuracy (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_leaderboard(
    run_dirs: list[str | os.PathLike], out_dir: str | os.PathLike, name: str = "leaderboard", with_rows: bool = False
) -> list[Path]:
    """Render OUT/NAME.{csv,md,png} (+ NAME_std.csv) from the runs' rows, and with `with_rows` the rows
    rendered, one NAME.seedS.jsonl per seed; with several (dataset, preset, model) groups each file name
    gets a `-dataset-preset-model` suffix."""
    rows = latest_ok_rows(read_rows(run_dirs))
    boards = build_leaderboards(rows)
    if not boards:
        raise ValueError(f"no finished (status ok) rows in {', '.join(map(str, run_dirs))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for board in boards:
        stem = name if len(boards) == 1 else f"{name}-{board.dataset}-{board.preset}-{board.model}"
        paths = {ext: out / f"{stem}.{ext}" for ext in ("csv", "md", "png")}
        board.mean.round(2).to_csv(paths["csv"])
        board.std.round(2).to_csv(out / f"{stem}_std.csv")
        paths["md"].write_text(_markdown(board))
        _heatmap(board, paths["png"])
        written += [paths["csv"], out / f"{stem}_std.csv", paths["md"], paths["png"]]
        if with_rows:
            mine = [r for r in rows if (r["dataset"], r["preset"], r["model"]) == (board.dataset, board.preset, board.model)]
            for seed in sorted({r["seed"] for r in mine}):
                path = out / f"{stem}.seed{seed}.jsonl"
                ordered = sorted((r for r in mine if r["seed"] == seed), key=lambda r: (r["method"], r["countermeasure"]))
                path.write_text("".join(json.dumps(r) + "\n" for r in ordered))
                written.append(path)
    return written
