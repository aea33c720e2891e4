"""`stale`: the rows whose cell this checkout would compute under another id (a plugin's version or settings, the
trainer, a victim or the preset changed since), with the parts of their identity that differ."""
from __future__ import annotations

from typing import Any

from ..engine.cells import Cell
from ..engine.config import GridConfig
from ..identity import flatten
from ..imported import PREFIX


def superseded(rows: list[dict[str, Any]], data_root: str | None = None) -> list[dict[str, Any]]:
    """Per `ok` row that is no longer current: its cell, and the identity entries that differ (dotted paths, with
    the row's value and this checkout's); a row that cannot be rebuilt here (its plugin is not installed, an
    imported set) is listed with the reason."""
    found = []
    for row in rows:
        if row.get("status") != "ok" or str(row.get("method", "")).startswith(PREFIX):
            continue
        try:
            config = GridConfig(dataset=row["dataset"], preset=row["preset"], data_root=data_root, device="cpu",
                                method_args={row["method"]: _args(row.get("method_params"))},
                                countermeasure_args={row["countermeasure"]: _args(row.get("countermeasure_params"))})
            cell = Cell(row["method"], row["countermeasure"], row["seed"], row.get("poison_ratio", 1.0),
                        row["model"]).resolve(config)
            if cell.cell_id == row["cell_id"]:
                continue
            before, now = flatten(row.get("identity") or {}), flatten(cell.identity)
            differs = {k: (before.get(k), now.get(k)) for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)}
        except (KeyError, ValueError, TypeError) as exc:
            differs = {"cannot rebuild": (str(exc), None)}
        found.append({"cell_id": row["cell_id"], "method": row.get("method_label") or row["method"],
                      "countermeasure": row.get("countermeasure_label") or row["countermeasure"], "seed": row["seed"],
                      "differs": differs})
    return found


def _args(params: dict[str, Any] | None) -> dict[str, str]:
    """A row's plugin parameters as command-line text, as `--method-args` would give them."""
    return {k: str(v) for k, v in (params or {}).items()}


def render(found: list[dict[str, Any]], total: int) -> str:
    """The report: how many of `total` rows are superseded, then each part of the identity that moved and how many
    rows it moved."""
    if not found:
        return f"all {total} finished rows are current: this checkout computes the same cell ids"
    moved: dict[str, list[str]] = {}
    for entry in found:
        for key, (was, now) in entry["differs"].items():
            moved.setdefault(f"{key}: {was} → {now}", []).append(f"{entry['method']} × {entry['countermeasure']}")
    lines = [f"{len(found)} of {total} finished rows are superseded (this checkout computes other cell ids):"]
    for change, cells in sorted(moved.items(), key=lambda kv: -len(kv[1])):
        shown = sorted(set(cells))
        lines.append(f"  {change}  ({len(cells)} rows: {', '.join(shown[:4])}{', …' if len(shown) > 4 else ''})")
    return "\n".join(lines)
