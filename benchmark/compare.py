"""Our leaderboard beside published reference numbers, and the protocol's qualitative facts checked on it."""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .leaderboard import SUMMARY_COLUMNS, Leaderboard, build_leaderboards
from .store import read_rows

# A countermeasure "restores" a method when it wins back at least this share of the accuracy the
# method took away: (acc(m, d) − acc(m, none)) / (acc(clean, d) − acc(m, none)). On the reference
# numbers it separates the facts cleanly (LSP under grayscale 0.65, TAP 0.05, OPS under AT 0.00).
RESTORED = 0.5
# Below this many points of damage (clean under the countermeasure minus the method under `none`) the
# share is noise over noise: a method that barely protects cannot show whether something restores it.
MIN_DAMAGE = 10.0
REFERENCE_COLUMNS = ("method", "countermeasure", "acc", "source")


@dataclass(frozen=True)
class Fact:
    """A qualitative claim of the protocol (docs/compare.md): `countermeasure` restores (or not) the selected methods."""

    text: str
    countermeasure: str
    restores: bool
    methods: tuple[str, ...] = ()  # these methods, or, when empty, every method in the run ...
    norms: tuple[str, ...] = ()  # ... whose budget starts with one of these (empty: any budget) ...
    exclude: tuple[str, ...] = ()  # ... except these

    def select(self, budgets: dict[str, str]) -> list[str]:
        """The methods of a run (name → budget text) this fact speaks about."""
        if self.methods:
            return [m for m in self.methods if m in budgets]
        return [m for m, b in budgets.items()
                if m != "clean" and m not in self.exclude and (not self.norms or b.startswith(self.norms))]


@dataclass(frozen=True)
class Contrast:
    """A comparative claim (docs/compare.md): `countermeasure` wins back a larger share of `more`'s damage than of `less`'s."""

    text: str
    countermeasure: str
    more: str
    less: str


FACTS = (
    Fact("grayscale restores EM and LSP", "grayscale", True, methods=("em", "lsp")),
    Fact("grayscale does not restore TAP or OPS", "grayscale", False, methods=("tap", "ops")),
    Fact("JPEG-10 restores every L∞/L2 method", "jpeg10", True, norms=("L∞", "L2")),
    Fact("adversarial training restores all but OPS", "adv_train", True, exclude=("ops",)),
    Fact("adversarial training does not restore OPS", "adv_train", False, methods=("ops",)),
)
CONTRASTS = (Contrast("adversarial training restores EM more than REM", "adv_train", "em", "rem"),)


def read_reference(path: str | os.PathLike) -> pd.DataFrame:
    """A reference CSV (method, countermeasure, acc in %, source) as a method × countermeasure table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no reference file at {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in REFERENCE_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: expected a CSV with columns {', '.join(REFERENCE_COLUMNS)}; missing {', '.join(missing) or 'rows'}")
    frame = pd.DataFrame(rows)
    frame["acc"] = pd.to_numeric(frame["acc"], errors="raise")
    return frame.pivot_table(index="method", columns="countermeasure", values="acc", aggfunc="first")


def _get(table: pd.DataFrame, method: str, countermeasure: str) -> float:
    if method in table.index and countermeasure in table.columns:
        return float(table.at[method, countermeasure])
    return math.nan


def _clean_under(table: pd.DataFrame, countermeasure: str) -> float:
    clean = _get(table, "clean", countermeasure)
    return _get(table, "clean", "none") if math.isnan(clean) else clean


def _damage(table: pd.DataFrame, method: str, countermeasure: str) -> float:
    """Points the method takes off the clean accuracy under this countermeasure's clean reference."""
    return _clean_under(table, countermeasure) - _get(table, method, "none")


def recovery(table: pd.DataFrame, method: str, countermeasure: str) -> float:
    """Share of the accuracy `method` took that `countermeasure` wins back (NaN when a cell is missing
    or the method takes nothing); without a clean cell under the countermeasure, clean/none stands in."""
    base, after = _get(table, method, "none"), _get(table, method, countermeasure)
    gap = _damage(table, method, countermeasure)
    return (after - base) / gap if gap > 0 else math.nan


@dataclass
class Comparison:
    """Our seed-mean cells beside the reference's, and each fact's verdict per method (judged on seed means;
    `uncertain` where the per-seed shares fall on both sides of the threshold)."""

    board: Leaderboard
    reference: pd.DataFrame
    cells: pd.DataFrame  # "ours (reference)" strings, our methods × our countermeasures
    facts: pd.DataFrame  # one row per (fact, method)

    @property
    def reproduced(self) -> int:
        return int((self.facts["verdict"] == "reproduced").sum())

    @property
    def checked(self) -> int:
        return int(self.facts["verdict"].isin(["reproduced", "MISS"]).sum())

    @property
    def uncertain(self) -> int:
        return int(self.facts["verdict"].str.startswith("uncertain").sum())


def compare(rows: list[dict[str, Any]], reference: pd.DataFrame) -> Comparison:
    """Compare one leaderboard's rows with a reference table (from `read_reference`)."""
    boards = build_leaderboards(rows)
    if len(boards) != 1:
        groups = ", ".join(f"{b.dataset}/{b.preset}/{b.model}" for b in boards) or "none"
        raise ValueError(f"compare needs the rows of one (dataset, preset, model) group; found: {groups}")
    (board,) = boards
    ours = board.mean.drop(columns=list(SUMMARY_COLUMNS))

    def cell(method: str, countermeasure: str) -> str:
        mine, theirs = _get(ours, method, countermeasure), _get(reference, method, countermeasure)
        text = "–" if math.isnan(mine) else f"{mine:.1f}"
        return text if math.isnan(theirs) else f"{text} ({theirs:.1f})"

    cells = pd.DataFrame({d: {m: cell(m, d) for m in ours.index} for d in ours.columns}).reindex(ours.index)
    cells.index.name = "method"
    budgets = {r["method"]: r.get("budget", "") for r in rows if r.get("status") == "ok"}
    budgets = {m: budgets[m] for m in ours.index if m in budgets}
    seeds = sorted({seed for accs in board.accs.values() for seed in accs})
    per_seed = [board.seed_table(seed) for seed in seeds] if len(seeds) > 1 else []
    verdicts = []
    for fact in FACTS:
        for method in fact.select(budgets):
            mine, theirs = recovery(ours, method, fact.countermeasure), recovery(reference, method, fact.countermeasure)
            needed = (_get(ours, method, fact.countermeasure), _get(ours, method, "none"),
                      _clean_under(ours, fact.countermeasure))
            if any(math.isnan(v) for v in needed):
                verdict = "not run"
            elif _damage(ours, method, fact.countermeasure) < MIN_DAMAGE:  # also where recovery() is NaN
                verdict = "too little protection to judge"
            else:
                verdict = "reproduced" if (mine >= RESTORED) == fact.restores else "MISS"
            shares = [x for x in (recovery(t, method, fact.countermeasure) for t in per_seed) if not math.isnan(x)]
            if verdict in ("reproduced", "MISS") and len(shares) > 1 and min(shares) < RESTORED <= max(shares):
                verdict = "uncertain: the seeds straddle the threshold"
            spread = f"; seeds {min(shares):.2f}–{max(shares):.2f}" if len(shares) > 1 else ""
            verdicts.append({
                "fact": fact.text, "method": method,
                "ours": _pair(ours, method, fact.countermeasure, mine) + spread,
                "reference": _pair(reference, method, fact.countermeasure, theirs),
                "verdict": verdict,
            })
    verdicts += [_contrast(c, ours, reference, per_seed) for c in CONTRASTS if {c.more, c.less} <= set(budgets)]
    return Comparison(board, reference, cells, pd.DataFrame(verdicts, columns=["fact", "method", "ours", "reference", "verdict"]))


def _contrast(c: Contrast, ours: pd.DataFrame, reference: pd.DataFrame, per_seed: list[pd.DataFrame]) -> dict[str, str]:
    """One verdict row for a comparative fact, judged on seed means like a `Fact`."""
    def shares(table: pd.DataFrame) -> tuple[float, float]:
        return recovery(table, c.more, c.countermeasure), recovery(table, c.less, c.countermeasure)

    def text(table: pd.DataFrame) -> str:
        more, less = shares(table)
        return "–" if math.isnan(more) or math.isnan(less) else f"{c.more} {more:.2f}, {c.less} {less:.2f}"

    more, less = shares(ours)
    if math.isnan(more) or math.isnan(less):
        verdict = "not run"
    elif min(_damage(ours, m, c.countermeasure) for m in (c.more, c.less)) < MIN_DAMAGE:
        verdict = "too little protection to judge"
    else:
        verdict = "reproduced" if more > less else "MISS"
        seeds = [m > n for m, n in (shares(t) for t in per_seed) if not (math.isnan(m) or math.isnan(n))]
        if len(set(seeds)) > 1:
            verdict = "uncertain: the seeds disagree on the order"
    return {"fact": c.text, "method": f"{c.more} vs {c.less}", "ours": text(ours), "reference": text(reference),
            "verdict": verdict}


def _pair(table: pd.DataFrame, method: str, countermeasure: str, share: float) -> str:
    """'none → countermeasure accuracy (recovered share)'."""
    base, after = _get(table, method, "none"), _get(table, method, countermeasure)
    if math.isnan(base) or math.isnan(after):
        return "–"
    if math.isnan(share):
        return f"{base:.1f} → {after:.1f}"
    shown = f"{share:.2f}"
    if (float(shown) >= RESTORED) != (share >= RESTORED):  # 0.499 must not read as 0.50 beside a MISS
        shown = f"{math.floor(share * 1000) / 1000:.3f}"
    return f"{base:.1f} → {after:.1f} ({shown})"


def render_markdown(result: Comparison, reference_name: str) -> str:
    """The comparison as Markdown: the cell table, then the facts with verdicts."""
    return (
        f"# Comparison: {result.board.title} vs `{reference_name}`\n\n"
        "Final clean test accuracy (%), ours (reference in brackets where it has the cell).\n\n"
        f"{result.cells.to_markdown()}\n\n"
        f"## Qualitative facts: {result.reproduced} of {result.checked} reproduced"
        + (f", {result.uncertain} uncertain" if result.uncertain else "") + "\n\n"
        f"Each cell: seed-mean accuracy under `none` → under the countermeasure (share of the method's damage won "
        f"back; the countermeasure restores the method when it is ≥ {RESTORED}; a method that takes fewer than "
        f"{MIN_DAMAGE:g} points is not judged). With several seeds the share's range over the seeds follows, and a "
        "fact whose seeds fall on both sides of the threshold is uncertain rather than judged.\n\n"
        f"{result.facts.to_markdown(index=False)}\n"
    )


def write_comparison(run_dirs: list[str | os.PathLike], reference_path: str | os.PathLike) -> str:
    """Markdown comparing the runs' rows with the reference CSV."""
    result = compare(read_rows(run_dirs), read_reference(reference_path))
    return render_markdown(result, Path(reference_path).name)
