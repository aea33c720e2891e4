"""How visible each method's perturbation is, measured from its rows, and the budget class that places it."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

# Measured PSNR bands, highest first: a class is a band, and a rank compares methods within one.
BANDS: tuple[tuple[float, str], ...] = ((30.0, "≥ 30 dB"), (24.0, "24–30 dB"), (-math.inf, "< 24 dB"))
REFERENCE, UNMEASURED = "reference", "unmeasured"  # the clean row (nothing changed); rows without measures
COLUMNS = ("psnr", "ssim", "linf", "l2")  # dB, [0, 1], /255, mean per-image L2 in [0,1] pixel units
DETECT = "detect"  # the best simple detector's held-out AUROC (`detect`), where a board has detection rows
HEADERS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "linf": "L∞ (/255)", "l2": "L2", DETECT: "detect AUROC"}
DIGITS = {"psnr": 1, "ssim": 3, "linf": 0, "l2": 2, DETECT: 2}  # decimals each measure is shown with


def measure_text(column: str, value: float) -> str:
    """A measure as text: `–` where unmeasured, `∞` for an unchanged set's PSNR."""
    if math.isnan(value):
        return "–"
    return "∞" if math.isinf(value) else f"{value:.{DIGITS[column]}f}"


def band(psnr: float) -> str:
    """The class of a measured PSNR (dB); NaN is `unmeasured`, infinity (nothing changed) `reference`."""
    if math.isnan(psnr):
        return UNMEASURED
    if math.isinf(psnr) and psnr > 0:
        return REFERENCE
    return next(name for low, name in BANDS if psnr >= low)


def _measures(row: dict[str, Any]) -> dict[str, float] | None:
    """PSNR, SSIM, L∞ (/255) and mean L2 of the protected set a row trained on; None without measures."""
    stats = row.get("perturbation")
    if not isinstance(stats, dict) or not isinstance(stats.get("linf"), (int, float)):
        return None
    psnr = stats.get("psnr")
    return {"psnr": math.inf if psnr is None and stats["linf"] == 0 else float(psnr if psnr is not None else np.nan),
            "ssim": float(stats.get("ssim", np.nan)), "linf": 255 * float(stats["linf"]),
            "l2": float(stats.get("l2_mean", np.nan))}


def perceptibility(labelled_rows: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """Per method label: its declared threat model, the mean over seeds of each protected set's PSNR, SSIM, L∞
    and L2 (one set per seed, whatever countermeasure its row ran), and the class of that PSNR."""
    sets: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    threat: dict[str, str] = {}
    for label, row in labelled_rows:
        threat.setdefault(label, str(row.get("budget") or ""))
        measured = _measures(row)
        if measured is not None:
            sets[label].setdefault(row["seed"], measured)
    records = []
    for label in dict.fromkeys(label for label, _ in labelled_rows):
        per_seed = list(sets[label].values())
        means = {c: float(np.mean([m[c] for m in per_seed])) if per_seed else np.nan for c in COLUMNS}
        records.append({"method": label, "threat": threat[label], **means, "class": band(means["psnr"])})
    return pd.DataFrame(records, columns=["method", "threat", *COLUMNS, "class"]).set_index("method")


def measures_of(table: pd.DataFrame) -> list[str]:
    """The measure columns a board shows: PSNR, SSIM, L∞, L2, and the detection AUROC where it has one."""
    return [*COLUMNS, *([DETECT] if DETECT in table.columns else [])]


def detectability(rows: list[dict[str, Any]], dataset: str, preset: str) -> dict[str, float]:
    """Per method label: the held-out AUROC of the best of the `detect` detectors, mean over seeds, from the
    detection rows of this dataset and preset."""
    best: dict[str, dict[int, float]] = defaultdict(dict)
    for row in rows:
        if row.get("dataset") == dataset and row.get("preset") == preset and isinstance(row.get("auroc"), float):
            seeds = best[str(row.get("method_label") or row.get("method"))]
            seeds[row["seed"]] = max(seeds.get(row["seed"], 0.0), row["auroc"])
    return {label: float(np.mean(list(seeds.values()))) for label, seeds in best.items()}


def class_ranks(table: pd.DataFrame, worst: pd.Series) -> pd.Series:
    """Each method's rank by `worst` (1: the lowest accuracy) among the methods of its class; NaN for the
    reference and the unmeasured."""
    ranks = pd.Series(np.nan, index=table.index, dtype=float)
    for name in [n for _, n in BANDS]:
        members = table.index[table["class"] == name]
        ranks[members] = worst.reindex(members).rank(method="min", na_option="keep")
    return ranks


def class_order() -> list[str]:
    """The classes, most invisible first, then the reference and the unmeasured."""
    return [n for _, n in BANDS] + [REFERENCE, UNMEASURED]
