"""The driver's account of a grid: it writes the rows and reports each finished piece."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..progress import GridProgress
from ..store.rows import append_row
from .cells import ResolvedCell
from .plan import Plan


@dataclass
class GridLog:
    """The driver's account of a grid: the only writer of OUT/results.jsonl, and with a plan, the progress
    line of every finished piece (protected set, prepared countermeasure, cell)."""

    run_dir: Path
    plan: Plan | None = None
    meter: GridProgress | None = None
    failed: int = 0
    recorded: int = 0  # rows appended by this grid

    def record(self, cell: ResolvedCell, row: dict[str, Any], running: int | None = None) -> None:
        """Append a cell's row and report it; `running`: how many cells are running or queued, when known."""
        append_row(self.run_dir, row)
        self.recorded += 1
        self.failed += row["status"] != "ok"
        if self.meter is not None:
            outcome = f"{100 * row['final_acc']:.1f}%" if row["status"] == "ok" else row["status"]
            extra = "" if running is None else f" · {running} running or queued · {self.failed} failed"
            seconds = (row.get("seconds") or {}).get("total") if row["status"] == "ok" else None
            self.meter.advance("cell", self.plan.cells[cell], f"{row['cell_id'].rsplit('/', 1)[0]}: {outcome}{extra}",
                               self.plan.cost_class.get(cell), seconds)

    def protected(self, method_name: str, seed: int, outcome: str, seconds: float | None = None) -> None:
        """Report a protected set made (in `seconds`), found in the cache or failed."""
        if self.meter is not None:
            key = (method_name, seed)
            self.meter.advance("artifact", self.plan.sets[key], f"protected set {method_name} seed {seed} {outcome}",
                               self.plan.cost_class.get(key), seconds)

    def prepared(self, name: str, outcome: str, seconds: float | None = None) -> None:
        """Report a countermeasure's `prepare` (made in `seconds`), unless it prepares nothing worth a line."""
        if self.meter is not None and self.plan.prepares[name] > 0:
            self.meter.advance("artifact", self.plan.prepares[name], f"countermeasure {name} {outcome}",
                               self.plan.cost_class.get(name), seconds)

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()
