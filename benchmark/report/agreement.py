"""How far a leaderboard tells the reference's story: verdict agreement, rank correlation of the restoration
shares and the efficacy gap, each with a bootstrap over seeds, and the reference cells left out with why."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..identity import canonical, effective_settings
from ..plugins import build
from ..presets import Preset
from ..registry import countermeasures
from .leaderboard import Leaderboard

# A countermeasure restores a method when it wins back at least this share of the accuracy the method took:
# share = (acc(m, c) − acc(m, none)) / (clean(c) − acc(m, none)).
RESTORED = 0.5
# A cell is judged only where the method takes at least this many points off clean(c) in our rows: below it
# the share is noise over noise.
MIN_DAMAGE = 10.0
# What the fidelity issue asks of the published board (docs/compare.md).
TARGETS = {"verdicts": 0.95, "spearman": 0.85, "efficacy_gap": 0.15, "seeds": 3}


@dataclass(frozen=True)
class ReferenceCell:
    """One published number with the countermeasure settings it was measured under, in our parameter names."""

    method: str
    countermeasure: str
    acc: float
    params: dict[str, str] = field(default_factory=dict)
    source: str = ""


@dataclass
class CellAgreement:
    """One reference cell (a method under a countermeasure other than `none`) against ours."""

    method: str
    countermeasure: str
    column: str | None  # our column that runs the reference's settings; None: excluded
    excluded: str  # why the cell is left out of every figure ("" when it is in)
    ours: tuple[float, float, float] = (math.nan, math.nan, math.nan)  # seed means: m(none), m(c), clean(c)
    reference: tuple[float, float, float] = (math.nan, math.nan, math.nan)

    @property
    def damage(self) -> float:
        return self.ours[2] - self.ours[0]

    @property
    def share(self) -> float:
        return share(*self.ours)

    @property
    def reference_share(self) -> float:
        return share(*self.reference)

    @property
    def judged(self) -> bool:
        return not self.excluded and self.damage >= MIN_DAMAGE and not math.isnan(self.reference_share)

    @property
    def agrees(self) -> bool | None:
        """Whether both say restored, or both say not; None for a cell that is not judged."""
        if not self.judged:
            return None
        return _restored(self.share) == _restored(self.reference_share)


@dataclass
class Figures:
    """The three agreement figures of one set of seed means."""

    agree: int
    judged: int
    spearman: float
    spearman_cells: int
    efficacy_gap: float
    gap_method: str  # the method that sets the gap

    @property
    def verdicts(self) -> float:
        return self.agree / self.judged if self.judged else math.nan


@dataclass
class Agreement:
    """The figures on the seed means, their bootstrap intervals, and the cells behind them."""

    figures: Figures
    intervals: dict[str, tuple[float, float]]  # figure → 95 % percentile interval over seed resamples
    cells: list[CellAgreement]
    efficacy: pd.DataFrame  # per method: relative `none` accuracy, ours and the reference's
    seeds: int  # the fewest seeds of any cell that enters a figure
    resamples: int

    @property
    def excluded(self) -> list[CellAgreement]:
        return [c for c in self.cells if c.excluded]

    def met(self) -> dict[str, bool]:
        """Each target of TARGETS: met or not (a figure that could not be computed is not met)."""
        f = self.figures
        return {"verdicts": f.verdicts >= TARGETS["verdicts"], "spearman": f.spearman >= TARGETS["spearman"],
                "efficacy_gap": f.efficacy_gap <= TARGETS["efficacy_gap"], "seeds": self.seeds >= TARGETS["seeds"]}

    def as_dict(self) -> dict[str, Any]:
        """Figures, intervals, targets and per-cell verdicts as JSON-ready data (for plots and studies)."""
        f = self.figures
        return {
            "verdicts": {"agree": f.agree, "judged": f.judged, "share": _finite(f.verdicts)},
            "spearman": {"value": _finite(f.spearman), "cells": f.spearman_cells},
            "efficacy_gap": {"value": _finite(f.efficacy_gap), "method": f.gap_method},
            "seeds": self.seeds, "resamples": self.resamples,
            "intervals": {k: [_finite(lo), _finite(hi)] for k, (lo, hi) in self.intervals.items()},
            "targets": TARGETS, "met": self.met(),
            "cells": [{"method": c.method, "countermeasure": c.countermeasure, "column": c.column,
                       "excluded": c.excluded, "share": _finite(c.share), "reference_share": _finite(c.reference_share),
                       "damage": _finite(c.damage), "judged": c.judged, "agrees": c.agrees} for c in self.cells],
        }


def _restored(share: float) -> bool:
    # Accuracies stored as fractions come back as % with rounding error; a share at the threshold (the
    # reference's LSP under BDR is 40.8 / 81.6 = 0.5 exactly) must not fall below it.
    return share >= RESTORED - 1e-9


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)


def share(base: float, after: float, clean: float) -> float:
    """Share of the damage (clean − base) that `after` wins back; NaN where there is no damage."""
    gap = clean - base
    return (after - base) / gap if gap > 0 else math.nan


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN below three pairs or without spread."""
    if len(x) < 3:
        return math.nan
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _column_settings(board: Leaderboard) -> tuple[dict[str, tuple[str, dict[str, Any]]], Preset | None]:
    """Our countermeasure columns (label → name, effective settings) and the preset, from the board's rows."""
    columns: dict[str, tuple[str, dict[str, Any]]] = {}
    preset = None
    labels = set(board.mean.columns)
    for row in board.rows:
        identity = row.get("identity") or {}
        label = row.get("countermeasure_label", row.get("countermeasure"))
        settings = (identity.get("countermeasure") or {}).get("settings")
        if label in labels and isinstance(settings, dict):
            columns.setdefault(label, (row["countermeasure"], settings))
        if preset is None and isinstance(identity.get("preset"), dict):
            preset = Preset(summary="", **identity["preset"])
    return columns, preset


def _wanted(cell: ReferenceCell, preset: Preset | None) -> dict[str, Any] | None:
    """The effective settings the reference cell's countermeasure runs at our preset (None: not computable)."""
    if preset is None or cell.countermeasure not in countermeasures.names():
        return None
    plugin = build(countermeasures.get(cell.countermeasure), cell.params)
    return json.loads(canonical(effective_settings(plugin, preset)))  # tuples as lists, as the rows hold them


def _difference(ours: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(k for k in set(ours) | set(wanted) if ours.get(k) != wanted.get(k))
    return ", ".join(f"{k} {ours.get(k)!r} (reference {wanted.get(k)!r})" for k in keys)


def match_cells(board: Leaderboard, reference: list[ReferenceCell]) -> list[CellAgreement]:
    """Each reference cell of a protected method under a countermeasure, with the column of ours that runs the
    reference's settings, or why none does."""
    columns, preset = _column_settings(board)
    ref = {(c.method, c.countermeasure): c for c in reference}
    out = []
    for cell in reference:
        if cell.method == "clean" or cell.countermeasure == "none":
            continue
        if (cell.method, "none") not in ref:
            out.append(CellAgreement(cell.method, cell.countermeasure, None, "the reference has no `none` cell"))
            continue
        if cell.method not in board.mean.index:
            out.append(CellAgreement(cell.method, cell.countermeasure, None, "method not in our rows"))
            continue
        wanted = _wanted(cell, preset)
        same_name = {label: s for label, (name, s) in columns.items() if name == cell.countermeasure}
        match = [label for label, s in same_name.items() if wanted is not None and s == wanted]
        if not match:
            if not same_name:
                why = "countermeasure not in our rows"
            else:
                label, settings = next(iter(same_name.items()))
                args = " ".join(f"{cell.countermeasure}.{k}={v}" for k, v in cell.params.items())
                why = (f"our `{label}` runs other settings: {_difference(settings, wanted or {})}"
                       + (f"; run the variant with --countermeasure-args {args}" if args else ""))
            out.append(CellAgreement(cell.method, cell.countermeasure, None, why))
            continue
        column = match[0]
        missing = [f"{m} × {c}" for m, c in ((cell.method, "none"), (cell.method, column), ("clean", column))
                   if not board.accs.get((m, c))]
        if missing:
            out.append(CellAgreement(cell.method, cell.countermeasure, column, f"no ok row for {', '.join(missing)}"))
            continue
        clean_ref = ref.get(("clean", cell.countermeasure)) or ref.get(("clean", "none"))
        out.append(CellAgreement(cell.method, cell.countermeasure, column, "",
                                 reference=(ref[(cell.method, "none")].acc, cell.acc,
                                            clean_ref.acc if clean_ref else math.nan)))
    return out


def _figures(cells: list[CellAgreement], mean: dict[tuple[str, str], float],
             efficacy_ref: dict[str, float]) -> tuple[Figures, dict[str, float]]:
    """The figures with our accuracies from `mean` ((method, column) → accuracy); also each method's
    relative `none` accuracy."""
    for c in cells:
        if not c.excluded:
            c.ours = (mean[(c.method, "none")], mean[(c.method, c.column)], mean[("clean", c.column)])
    judged = [c for c in cells if c.judged]
    pairs = [(c.share, c.reference_share) for c in cells
             if not c.excluded and not (math.isnan(c.share) or math.isnan(c.reference_share))]
    clean = mean.get(("clean", "none"), math.nan)
    relative = {m: mean.get((m, "none"), math.nan) / clean for m in efficacy_ref}
    gaps = {m: abs(relative[m] - efficacy_ref[m]) for m in efficacy_ref if not math.isnan(relative[m])}
    worst = max(gaps, key=gaps.get) if gaps else ""
    return Figures(sum(bool(c.agrees) for c in judged), len(judged),
                   spearman([p[0] for p in pairs], [p[1] for p in pairs]), len(pairs),
                   gaps.get(worst, math.nan), worst), relative


def agreement(board: Leaderboard, reference: list[ReferenceCell], resamples: int = 1000,
              seed: int = 0) -> Agreement:
    """The agreement figures of one board against reference cells, with a paired bootstrap over seeds: each
    resample draws the board's seeds with replacement, the same draw for every cell (one seed's cells share
    its protected sets), and takes each cell's mean over the drawn seeds it has."""
    cells = match_cells(board, reference)
    ref = {(c.method, c.countermeasure): c.acc for c in reference}
    clean_ref = ref.get(("clean", "none"), math.nan)
    efficacy_ref = {m: ref[(m, "none")] / clean_ref for (m, c) in ref
                    if c == "none" and m != "clean" and m in board.mean.index}
    used = {(c.method, k) for c in cells if not c.excluded for k in ("none", c.column)}
    used |= {("clean", c.column) for c in cells if not c.excluded} | {("clean", "none")}
    used |= {(m, "none") for m in efficacy_ref}
    accs = {k: board.accs[k] for k in used if board.accs.get(k)}

    def means(draw: list[int] | None) -> dict[tuple[str, str], float]:
        out = {}
        for key, by_seed in accs.items():
            drawn = [by_seed[s] for s in draw if s in by_seed] if draw is not None else []
            out[key] = float(np.mean(drawn if drawn else list(by_seed.values())))
        return out

    figures, relative = _figures(cells, means(None), efficacy_ref)
    seeds = sorted({s for by_seed in accs.values() for s in by_seed})
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {"verdicts": [], "spearman": [], "efficacy_gap": []}
    for _ in range(resamples if len(seeds) > 1 else 0):
        f, _ = _figures(cells, means(list(rng.choice(seeds, size=len(seeds)))), efficacy_ref)
        for key, value in (("verdicts", f.verdicts), ("spearman", f.spearman), ("efficacy_gap", f.efficacy_gap)):
            samples[key].append(value)
    _figures(cells, means(None), efficacy_ref)  # leave the cells at the seed means
    intervals = {k: _interval(v) for k, v in samples.items()}
    efficacy = pd.DataFrame({"ours": relative, "reference": efficacy_ref})
    efficacy.index.name = "method"
    fewest = min((len(accs[k]) for k in used if k in accs), default=0)
    return Agreement(figures, intervals, cells, efficacy, fewest, resamples if len(seeds) > 1 else 0)


def _interval(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return math.nan, math.nan
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))
