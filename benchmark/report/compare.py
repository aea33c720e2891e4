"""Our leaderboard beside published reference numbers, and the protocol's qualitative facts checked on it."""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..store.rows import read_rows
from .agreement import MIN_DAMAGE, RESTORED, TARGETS, Agreement, ReferenceCell, agreement, share
from .leaderboard import Leaderboard, build_leaderboards

REFERENCE_COLUMNS = ("method", "countermeasure", "acc", "source")  # and optionally `params`: "k=v k=v"
METRICS = ("final_acc", "peak_acc")


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
    Fact("grayscale does not restore HYPO", "grayscale", False, methods=("hypo",)),  # ISS's README
    Fact("COIN restores CUDA", "coin", True, methods=("cuda",)),  # COIN (AAAI 2025), the defence's claim
)
CONTRASTS = (Contrast("adversarial training restores EM more than REM", "adv_train", "em", "rem"),)


def read_reference(path: str | os.PathLike) -> list[ReferenceCell]:
    """A reference CSV: columns method, countermeasure, acc (in %), source, and optionally params, the
    countermeasure's settings in that cell as space-separated `name=value` in our parameter names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no reference file at {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in REFERENCE_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: expected a CSV with columns {', '.join(REFERENCE_COLUMNS)}; missing {', '.join(missing) or 'rows'}")
    cells = []
    for line, row in enumerate(rows, start=2):
        try:
            acc = float(row["acc"])
        except ValueError:
            raise ValueError(f"{path}, line {line}: acc {row['acc']!r} is not a number") from None
        params = {}
        for item in (row.get("params") or "").split():
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise ValueError(f"{path}, line {line}: params item {item!r} is not name=value")
            params[key] = value
        cells.append(ReferenceCell(row["method"], row["countermeasure"], acc, params, row["source"]))
    return cells


def reference_table(cells: list[ReferenceCell]) -> pd.DataFrame:
    """Reference cells as a method × countermeasure table of accuracies (%)."""
    frame = pd.DataFrame([{"method": c.method, "countermeasure": c.countermeasure, "acc": c.acc} for c in cells])
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
    return share(_get(table, method, "none"), _get(table, method, countermeasure), _clean_under(table, countermeasure))


@dataclass
class Comparison:
    """Our seed-mean cells beside the reference's, and each fact's verdict per method (judged on seed means;
    `uncertain` where the per-seed shares fall on both sides of the threshold)."""

    board: Leaderboard
    reference: pd.DataFrame
    cells: pd.DataFrame  # "ours (reference)" strings, our methods × our countermeasures
    facts: pd.DataFrame  # one row per (fact, method)
    agreement: Agreement
    metric: str = "final_acc"

    @property
    def reproduced(self) -> int:
        return int((self.facts["verdict"] == "reproduced").sum())

    @property
    def checked(self) -> int:
        return int(self.facts["verdict"].isin(["reproduced", "MISS"]).sum())

    @property
    def uncertain(self) -> int:
        return int(self.facts["verdict"].str.startswith("uncertain").sum())


def compare(rows: list[dict[str, Any]], cells: list[ReferenceCell], metric: str = "final_acc",
            resamples: int = 1000) -> Comparison:
    """Compare one leaderboard's rows with reference cells (from `read_reference`), on the rows' final accuracy
    or their peak (`metric`, the best evaluation of the run: what early stopping would have kept)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    if metric != "final_acc":
        rows = [r | {"final_acc": r.get(metric)} if r.get("status") == "ok" else r for r in rows]
    reference = reference_table(cells)
    boards = build_leaderboards(rows)
    if len(boards) != 1:
        groups = ", ".join(f"{b.dataset}/{b.preset}/{b.model}" for b in boards) or "none"
        raise ValueError(f"compare needs the rows of one (dataset, preset, model) group; found: {groups}")
    (board,) = boards
    ours = board.mean

    def cell(method: str, countermeasure: str) -> str:
        mine, theirs = _get(ours, method, countermeasure), _get(reference, method, countermeasure)
        text = "–" if math.isnan(mine) else f"{mine:.1f}"
        return text if math.isnan(theirs) else f"{text} ({theirs:.1f})"

    table = pd.DataFrame({d: {m: cell(m, d) for m in ours.index} for d in ours.columns}).reindex(ours.index)
    table.index.name = "method"
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
    facts = pd.DataFrame(verdicts, columns=["fact", "method", "ours", "reference", "verdict"])
    return Comparison(board, reference, table, facts, agreement(board, cells, resamples), metric)


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


def _range(interval: tuple[float, float], fmt: str) -> str:
    low, high = interval
    return "–" if math.isnan(low) else f"{format(low, fmt)}–{format(high, fmt)}"


def agreement_markdown(a: Agreement) -> str:
    """The agreement figures with their intervals and targets, the excluded cells and the per-cell verdicts."""
    f, met, iv = a.figures, a.met(), a.intervals
    yes = {True: "yes", False: "**no**"}
    figures = pd.DataFrame([
        ("restored-or-not verdicts agree, over judged cells", f"{f.agree} / {f.judged} = {f.verdicts:.0%}"
         if f.judged else "no judged cell", _range(iv["verdicts"], ".0%"), f"≥ {TARGETS['verdicts']:.0%}",
         yes[met["verdicts"]]),
        (f"Spearman of the restoration shares ({f.spearman_cells} cells)", f"{f.spearman:.2f}",
         _range(iv["spearman"], ".2f"), f"≥ {TARGETS['spearman']}", yes[met["spearman"]]),
        ("efficacy gap: max \\|relative `none` accuracy, ours − reference's\\|",
         f"{f.efficacy_gap:.2f} ({f.gap_method})" if f.gap_method else "–", _range(iv["efficacy_gap"], ".2f"),
         f"≤ {TARGETS['efficacy_gap']}", yes[met["efficacy_gap"]]),
        ("seeds per compared cell (fewest)", str(a.seeds), "", f"≥ {TARGETS['seeds']}", yes[met["seeds"]]),
    ], columns=["figure", "value", f"95 % interval ({a.resamples} seed resamples)", "target", "met"])
    cells = pd.DataFrame([{
        "method": c.method, "countermeasure": c.countermeasure, "our column": c.column,
        "ours: none → c (clean c)": f"{c.ours[0]:.1f} → {c.ours[1]:.1f} ({c.ours[2]:.1f})",
        "share": f"{c.share:.2f}", "reference share": f"{c.reference_share:.2f}",
        "verdict": ("agree" if c.agrees else "DISAGREE") if c.judged else f"not judged (damage {c.damage:.1f})",
    } for c in a.cells if not c.excluded])
    excluded = pd.DataFrame([{"method": c.method, "countermeasure": c.countermeasure, "why": c.excluded}
                             for c in a.excluded])
    efficacy = a.efficacy.round(2)
    return (
        "## Agreement with the reference\n\n"
        "For each reference cell (method m, countermeasure c): damage = clean(c) − m(none), "
        f"share = (m(c) − m(none)) / damage, restored = share ≥ {RESTORED}; a cell is judged where our damage is ≥ {MIN_DAMAGE:g} points. "
        "Relative `none` accuracy = m(none) / clean(none). The intervals resample the seeds with replacement (the "
        "same draw for every cell). A reference cell is compared only with a column of ours that runs the "
        "reference's settings.\n\n"
        f"{figures.to_markdown(index=False)}\n\n"
        "Relative `none` accuracy per method:\n\n"
        f"{efficacy.to_markdown()}\n\n"
        + (f"### Excluded reference cells ({len(excluded)})\n\n{excluded.to_markdown(index=False)}\n\n"
           if len(excluded) else "")
        + (f"### Cells\n\n{cells.to_markdown(index=False)}\n" if len(cells) else "")
    )


def render_markdown(result: Comparison, reference_name: str) -> str:
    """The comparison as Markdown: the agreement figures, the cell table, then the facts with verdicts."""
    what = "Final" if result.metric == "final_acc" else "Peak (best evaluation)"
    return (
        f"# Comparison: {result.board.title} vs `{reference_name}`\n\n"
        f"{what} clean test accuracy (%), ours (reference in brackets where it has the cell).\n\n"
        f"{result.cells.to_markdown()}\n\n"
        f"{agreement_markdown(result.agreement)}\n"
        f"## Qualitative facts: {result.reproduced} of {result.checked} reproduced"
        + (f", {result.uncertain} uncertain" if result.uncertain else "") + "\n\n"
        f"Each cell: seed-mean accuracy under `none` → under the countermeasure (share of the method's damage won "
        f"back; the countermeasure restores the method when it is ≥ {RESTORED}; a method that takes fewer than "
        f"{MIN_DAMAGE:g} points is not judged). With several seeds the share's range over the seeds follows, and a "
        "fact whose seeds fall on both sides of the threshold is uncertain rather than judged.\n\n"
        f"{result.facts.to_markdown(index=False)}\n"
    )


def write_comparison(run_dirs: list[str | os.PathLike], reference_path: str | os.PathLike,
                     metric: str = "final_acc", resamples: int = 1000,
                     json_path: str | os.PathLike | None = None) -> str:
    """Markdown comparing the runs' rows with the reference CSV; `json_path` also gets the agreement as JSON."""
    result = compare(read_rows(run_dirs), read_reference(reference_path), metric, resamples)
    if json_path:
        Path(json_path).write_text(json.dumps(result.agreement.as_dict(), indent=1) + "\n")
    return render_markdown(result, Path(reference_path).name)
