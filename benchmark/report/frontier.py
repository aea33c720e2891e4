"""A frontier's curves from its rows: accuracy under the worst countermeasure, on average and under each one,
against the PSNR each protected set actually has; its table, Markdown and plot."""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..registry import methods
from ..store.rows import read_rows

READ_AT = (32.0, 28.0, 24.0)  # PSNRs at which the summary reads each curve (interpolated between ladder points)
CALIBRATION = "frontier.json"  # the ladders `frontier` calibrated, beside the rows
PER_COLUMN = "acc_"  # prefix of the table's per-countermeasure accuracy columns


def frontier_table(rows: list[dict[str, Any]], over: list[str] | None = None) -> pd.DataFrame:
    """One record per method configuration: its knob value, the PSNR/SSIM of its protected sets (mean over seeds),
    accuracy under `none`, under the worst and on average over the countermeasures `over` (default: every one the
    rows hold), mean and range over seeds (a seed counts only when it has all of them), the worst over every
    countermeasure the rows hold (`worst_all`, over the seeds that have them all), and accuracy under each
    countermeasure the rows hold (`acc_NAME`, mean over the seeds that ran it)."""
    ok = [r for r in rows if r.get("status") == "ok" and isinstance(r.get("final_acc"), (int, float))]
    column = {id(r): r.get("countermeasure_label") or r["countermeasure"] for r in ok}
    columns = sorted(set(column.values()))
    over = sorted(set(over)) if over else columns
    by_config: dict[str, dict[int, dict[str, Any]]] = defaultdict(lambda: defaultdict(dict))
    first: dict[str, dict[str, Any]] = {}
    for r in ok:
        label = r.get("method_label") or r["method"]
        by_config[label][r["seed"]][column[id(r)]] = r
        first.setdefault(label, r)
    records = []
    for label, seeds in by_config.items():
        row = first[label]
        cls = methods.get(row["method"]) if row["method"] in methods.names() else None
        param = cls.strength.param if cls is not None and cls.strength is not None else None
        value = (row.get("method_params") or {}).get(param, getattr(cls(), param)) if param else np.nan
        complete = {s: {c: cells[c] for c in over} for s, cells in seeds.items() if set(over) <= set(cells)}
        worst = [100 * max(c["final_acc"] for c in cells.values()) for cells in complete.values()]
        mean = [100 * np.mean([c["final_acc"] for c in cells.values()]) for cells in complete.values()]
        every = [100 * max(c["final_acc"] for c in cells.values()) for cells in seeds.values()
                 if set(columns) <= set(cells)]
        none = [100 * cells["none"]["final_acc"] for cells in seeds.values() if "none" in cells]
        stats = [s for s in (next(iter(cells.values())).get("perturbation") for cells in seeds.values())
                 if isinstance(s, dict)]
        psnrs = [s["psnr"] if s.get("psnr") is not None else math.inf for s in stats]
        records.append({
            "method": row["method"], "label": label, "knob": param or "", "value": value,
            "psnr": float(np.mean(psnrs)) if psnrs else np.nan,
            "ssim": float(np.mean([s.get("ssim", np.nan) for s in stats])) if stats else np.nan,
            "none": float(np.mean(none)) if none else np.nan,
            "worst": float(np.mean(worst)) if worst else np.nan,
            "worst_min": min(worst, default=np.nan), "worst_max": max(worst, default=np.nan),
            "mean": float(np.mean(mean)) if mean else np.nan,
            "mean_min": min(mean, default=np.nan), "mean_max": max(mean, default=np.nan),
            "seeds": len(complete), "countermeasures": len(over),
            "worst_all": float(np.mean(every)) if every else np.nan,
            "worst_all_min": min(every, default=np.nan), "worst_all_max": max(every, default=np.nan),
            "seeds_all": len(every),
        } | {PER_COLUMN + c: float(np.mean([100 * cells[c]["final_acc"] for cells in seeds.values() if c in cells]))
             if any(c in cells for cells in seeds.values()) else np.nan for c in columns})
    table = pd.DataFrame(records)
    return table.sort_values(["method", "psnr"], ascending=[True, False], kind="stable").reset_index(drop=True)


def per_column(table: pd.DataFrame) -> list[str]:
    """The countermeasures whose accuracy the table holds, `none` first."""
    names = [c[len(PER_COLUMN):] for c in table.columns if c.startswith(PER_COLUMN)]
    return sorted(names, key=lambda n: (n != "none", n))


def wider(table: pd.DataFrame) -> bool:
    """Whether the rows hold more countermeasures than `worst` is over, with a seed that has them all somewhere."""
    return len(per_column(table)) > table["countermeasures"].max() and bool(table["seeds_all"].any())


def read_at(table: pd.DataFrame, method: str, psnr: float, column: str = "worst") -> float:
    """`column` of `method` at `psnr` dB, linear between the two ladder points around it; NaN outside its range."""
    points = table[(table["method"] == method) & table[column].notna() & np.isfinite(table["psnr"])]
    points = points.sort_values("psnr")
    x, y = points["psnr"].to_numpy(dtype=float), points[column].to_numpy(dtype=float)
    if len(x) == 0 or not x[0] <= psnr <= x[-1]:
        return math.nan
    return float(np.interp(psnr, x, y))


def plot_frontier(table: pd.DataFrame, title: str, path: Path) -> None:
    """Accuracy under the worst countermeasure and on average against PSNR, one curve per method, seed ranges as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["worst", "mean"] + (["worst_all"] if wider(table) else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), sharey=True)
    clean = table[table["method"] == "clean"]
    titles = {"worst": "the worst countermeasure", "mean": "the mean over countermeasures",
              "worst_all": f"the worst of all {len(per_column(table))} countermeasures"}
    for ax, column in zip(axes, panels):
        for i, (method, points) in enumerate(table[table["method"] != "clean"].groupby("method", sort=True)):
            points = points[points[column].notna()].sort_values("psnr")
            if points.empty:
                continue
            err = np.vstack([points[column] - points[f"{column}_min"], points[f"{column}_max"] - points[column]])
            ax.errorbar(points["psnr"], points[column], yerr=err, marker="o", ms=4, capsize=3, label=method,
                        color=matplotlib.colormaps["tab20"](2 * i % 20 + i // 10 % 2))  # dark hues first
        if not clean.empty and not math.isnan(clean[column].iloc[0]):
            ax.axhline(clean[column].iloc[0], color="grey", linestyle="--", linewidth=1, label="clean")
        ax.set_xlabel("PSNR of the protected set (dB) — less visible to the left")
        ax.set_title(f"accuracy under {titles[column]}", fontsize=9)
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("clean test accuracy (%) — lower protects more")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _readings(table: pd.DataFrame, shown: list[str], cells: dict[str, tuple[float, str]]) -> pd.DataFrame:
    """Each shown method's curve read at (PSNR, column) under each header, as text (`–` outside its ladder)."""
    read = pd.DataFrame({head: [read_at(table, m, p, c) for m in shown] for head, (p, c) in cells.items()}, index=shown)
    return read.map(lambda v: "–" if math.isnan(v) else f"{v:.1f}")


def _grid(frame: pd.DataFrame) -> str:
    """A table of readings in Markdown, methods left, numbers right."""
    return frame.to_markdown(disable_numparse=True, colalign=("left",) + ("right",) * frame.shape[1])


def _markdown(table: pd.DataFrame, title: str, calibration: dict[str, Any] | None) -> str:
    """The frontier page: the reading at fixed PSNRs, then every configuration, then the calibration."""
    shown = [m for m in dict.fromkeys(table["method"]) if m != "clean"]
    at = _readings(table, shown, {f"worst at {p:g} dB": (p, "worst") for p in READ_AT})
    each = ""
    for p in READ_AT:
        cells = _readings(table, shown, {c: (p, PER_COLUMN + c) for c in per_column(table)})
        if (cells != "–").any().any():
            each += f"\n\n### {p:g} dB\n\n" + _grid(cells)

    def fmt(v: Any, digits: int = 1) -> str:
        return "–" if isinstance(v, float) and math.isnan(v) else ("∞" if v == math.inf else f"{v:.{digits}f}")

    lines = ["| configuration | knob | PSNR (dB) | SSIM | none | worst [seed range] | mean [seed range] | seeds |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|"]
    for _, r in table.iterrows():
        value = "" if not r["knob"] else f"{r['knob']}={r['value']:g}"
        lines.append(f"| `{r['label']}` | {value} | {fmt(r['psnr'])} | {fmt(r['ssim'], 3)} | {fmt(r['none'])} | "
                     f"{fmt(r['worst'])} [{fmt(r['worst_min'])}–{fmt(r['worst_max'])}] | "
                     f"{fmt(r['mean'])} [{fmt(r['mean_min'])}–{fmt(r['mean_max'])}] | {r['seeds']} |")
    everything = per_column(table)
    every = ""
    if wider(table):
        reached = table[table["seeds_all"] > 0]
        at_all = _readings(table, shown, {f"{p:g} dB": (p, "worst_all") for p in READ_AT})
        points = [f"| `{r['label']}` | {fmt(r['psnr'])} | {fmt(r['worst_all'])} [{fmt(r['worst_all_min'])}–"
                  f"{fmt(r['worst_all_max'])}] | {r['seeds_all']} |" for _, r in reached.iterrows()]
        every = (f"\n## Worst of all {len(everything)} countermeasures\n\nThe highest accuracy over every column the "
                 f"rows hold ({', '.join(f'`{c}`' for c in everything)}), at the configurations where a seed has all "
                 "of them (mean [range] over those seeds), and read at matched PSNR between such points only.\n\n"
                 + _grid(at_all)
                 + "\n\n| configuration | PSNR (dB) | worst of all [seed range] | seeds |\n|:--|--:|--:|--:|\n"
                 + "\n".join(points) + "\n")
    pilots = ""
    if calibration:
        pilots = ("\n## Calibration\n\nEach knob was set from a pilot: the method at its given strength on "
                  "evenly spaced training images (seed 0), its PSNR measured there, and the value for each target "
                  "predicted from how the perturbation's MSE scales with the knob; where a step was measured on the "
                  "same pilot and missed, it was predicted again from its last two points. The table above gives the "
                  "PSNR each full protected set actually has.\n\n| method | knob | pilot images | pilot PSNR (dB) | "
                  "target → value (predicted dB; measured on the pilot) |\n|:--|:--|--:|--:|:--|\n")
        for name, entry in calibration["methods"].items():
            steps = ", ".join(f"{s['target']:g} → {s['value']:g} ({s['predicted_psnr']:.1f}"
                              + (f"; measured {s['measured_psnr']:.1f}" if s.get("measured_psnr") is not None else "")
                              + ")" + (" dropped" if "dropped" in s else "") for s in entry["ladder"])
            pilots += (f"| `{name}` | {entry['param']} (default {entry['default']:g}) | {entry['pilot_images']} | "
                       f"{entry['pilot_psnr']:.1f} | {steps} |\n")
    return (f"# Frontier: {title}\n\nClean test accuracy (%) of victims trained on each protected set; lower protects "
            "more. `worst` is the highest accuracy over the countermeasures in the title (the defender's best), `mean` "
            "their average; a seed counts only with all of them. Rendered from the folder's rows by "
            "`python -m benchmark frontier`.\n\n![frontier](frontier.png)\n\n## Worst case at matched PSNR\n\n"
            "Read off each method's curve, linearly between its two ladder points around the PSNR (`–`: outside the "
            "range its ladder reached).\n\n"
            + _grid(at)
            + ("\n\n## Each countermeasure at matched PSNR\n\nAccuracy under each countermeasure, read off the same "
               "way from each configuration's mean over the seeds that ran it (so a column can rest on fewer seeds "
               "than `worst`; the seeds per cell are in the board beside this page)." + each if each else "")
            + "\n\n## Every configuration\n\n" + "\n".join(lines) + "\n" + every + pilots)


def write_frontier(run_dirs: list[str | os.PathLike], out: str | os.PathLike, over: list[str] | None = None) -> list[Path]:
    """OUT/frontier.{csv,md,png} from the rows of the run folders (with OUT/frontier.json's calibration if any);
    `worst` and `mean` over the countermeasures `over` (default: every one the rows hold)."""
    rows = [r for r in read_rows(run_dirs) if isinstance(r, dict)]
    table = frontier_table(rows, over)
    if table.empty:
        raise ValueError(f"no finished (status ok) rows in {', '.join(map(str, run_dirs))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    some = next(r for r in rows if r.get("status") == "ok")
    seeds = sorted({r["seed"] for r in rows if r.get("status") == "ok"})
    shown = ", ".join(over) if over else f"{int(table['countermeasures'].max())} countermeasures"
    title = (f"{some['dataset']} · preset {some['preset']} · victim {some['model']} · seeds "
             f"{','.join(map(str, seeds))} · worst of {shown}")
    calibration_path = out / CALIBRATION
    calibration = json.loads(calibration_path.read_text()) if calibration_path.is_file() else None
    paths = [out / "frontier.csv", out / "frontier.md", out / "frontier.png"]
    table.round(3).to_csv(paths[0], index=False)
    paths[1].write_text(_markdown(table, title, calibration))
    plot_frontier(table, title, paths[2])
    return paths
