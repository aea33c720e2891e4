"""Boards from result rows: one method × countermeasure table per (dataset, preset, victim, poisoning ratio), with
seed means, spreads, statuses, perceptibility and provenance; `tables.py` renders their files."""
from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..identity import digest, flatten
from ..registry import MAIN_SUITE, countermeasures, methods
from ..store.row import Row, RowError
from .perceptibility import DETECT, class_ranks, detectability, perceptibility
from .summaries import SUMMARIES, summarise

SUMMARY_COLUMNS = tuple(SUMMARIES)
MEASURE_COLUMNS = ("psnr_db", "ssim", "linf_255", "l2", "threat", "budget_class", "class_rank")  # the CSV's budget columns
DETECT_COLUMN = "detect_auroc"  # the CSV's detection column, where the board has detection rows
OK, FAILED, MISSING = "ok", "failed", "missing"
UNSTABLE_SPREAD = 10.0  # points between a cell's lowest and highest seed above which it is flagged unstable
UNSTABLE_MARK = "†"

# a board's fields of a row; schema-1 rows predate the ids and labels, derived from the names and parameters instead
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
    mean: pd.DataFrame  # seed means, method label × countermeasure label
    std: pd.DataFrame  # spread over seeds (ddof 0)
    seeds: pd.DataFrame  # distinct seeds with an ok row (0 where none)
    low: pd.DataFrame  # lowest seed per cell
    high: pd.DataFrame  # highest seed per cell
    summary: pd.DataFrame  # method label × summary (`worst`, `mean`: summaries.py) of `protocol`, over the ok cells
    summary_low: pd.DataFrame  # the summaries of `low`: they bound `summary` from below
    summary_high: pd.DataFrame  # the summaries of `high`: they bound `summary` from above
    accs: dict[tuple[str, str], dict[int, float]]  # (method label, countermeasure label) → seed → accuracy
    status: pd.DataFrame  # "ok", "failed" (rows, none ok) or "missing" (no row) per cell
    rows: list[dict[str, Any]]  # the rows shown, in table order: per cell id its latest ok row, else latest failed
    preset_label: str  # the preset name, with `@` and a short id when another preset_id shares the name
    provenance: list[str]  # one sentence per mixed commit, dirty checkout or library versions; empty when uniform
    # per method: threat model, PSNR, SSIM, L∞, L2 of its protected sets, budget class and rank by `worst` in it
    perceptibility: pd.DataFrame
    poison_ratio: float = 1.0  # the share of the training set the methods protected
    extra: tuple[str, ...] = ()  # countermeasure labels beyond the protocol (suite `extra`): outside the summaries

    @property
    def protocol(self) -> pd.DataFrame:
        """Seed means under the protocol's countermeasures only: what `worst` and `mean` summarise."""
        return self.mean.drop(columns=list(self.extra))

    @property
    def table(self) -> pd.DataFrame:
        """The board as shown: the protocol's countermeasure columns, the summaries, then the columns beyond it."""
        return pd.concat([self.protocol, self.summary, self.mean[list(self.extra)]], axis=1)

    @property
    def unstable(self) -> pd.DataFrame:
        """Cells whose seeds disagree by more than UNSTABLE_SPREAD points."""
        return (self.high - self.low) > UNSTABLE_SPREAD

    def seed_table(self, seed: int) -> pd.DataFrame:
        """Method × countermeasure accuracies (%) of one seed (NaN where that seed has no ok row)."""
        cols = list(self.mean.columns)
        return pd.DataFrame([[self.accs.get((m, c), {}).get(seed, np.nan) for c in cols] for m in self.mean.index],
                            index=self.mean.index, columns=cols, dtype=float)

    def ranking(self) -> list[tuple[str, float, float, float, bool]]:
        """Methods by `worst` (strongest first): (label, worst, its lower and upper bound over seeds, whether its
        bounds overlap the next method's, i.e. the two are not distinguishable at these seeds)."""
        worst, low, high = self.summary["worst"], self.summary_low["worst"], self.summary_high["worst"]
        order = worst.dropna().sort_values(kind="stable").index
        ranked = [(m, float(worst[m]), float(low[m]), float(high[m])) for m in order]
        return [(*r, i + 1 < len(ranked) and ranked[i + 1][2] <= r[3]) for i, r in enumerate(ranked)]

    @property
    def incomplete(self) -> pd.Series:
        """Per method row: whether a protocol cell failed or is missing, so `worst` is only a lower bound."""
        return (self.status.drop(columns=list(self.extra)) != OK).any(axis=1)

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
    try:
        Row.from_dict(row)
    except RowError as exc:
        return None, str(exc)
    schema, ratio = row.get("schema", 1), row.get("poison_ratio", 1.0)
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
    row_rank, col_rank = {i: n for n, i in enumerate(row_labels)}, {i: n for n, i in enumerate(col_labels)}
    shown = sorted(entries, key=lambda e: (row_rank[e["method_id"]], col_rank[e["countermeasure_id"]], e["seed"]))
    rows = [e["row"] for e in shown]
    first = entries[0]
    labelled = {(row_labels[m], col_labels[c]): dict(seeds_of) for (m, c), seeds_of in accs.items()}
    visible = perceptibility([(row_labels[e["method_id"]], e["row"]) for e in shown]).reindex(mean.index)
    extra = tuple(dict.fromkeys(col_labels[e["countermeasure_id"]] for e in shown if _beyond_protocol(e["countermeasure"])))
    summary = summarise(mean.drop(columns=list(extra)))
    visible["rank"] = class_ranks(visible, summary["worst"])
    return Leaderboard(first["dataset"], first["preset"], first["preset_id"], first["model"], mean, std, seeds, low,
                       high, summary, summarise(low.drop(columns=list(extra))), summarise(high.drop(columns=list(extra))),
                       labelled, status, rows, preset_label, _provenance(rows), visible, first["poison_ratio"], extra)


def _beyond_protocol(countermeasure: str) -> bool:
    """Whether a countermeasure is registered in a suite other than the protocol's (an unknown name counts as the
    protocol's, as rows from a plugin no longer installed did)."""
    return countermeasure in countermeasures and getattr(countermeasures.get(countermeasure), "suite", MAIN_SUITE) != MAIN_SUITE


def attach_detection(boards: list[Leaderboard], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each board whose dataset and preset have `detect` rows its methods' detection AUROC, a measure column
    beside PSNR; a board without any is left as it is. Returns the rows of the boards' datasets and presets."""
    keys = {(b.dataset, b.preset) for b in boards}
    for board in boards:
        found = detectability(rows, board.dataset, board.preset)
        if any(label in found for label in board.perceptibility.index):
            board.perceptibility[DETECT] = [found.get(label, np.nan) for label in board.perceptibility.index]
    return [r for r in rows if (r.get("dataset"), r.get("preset")) in keys]


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
