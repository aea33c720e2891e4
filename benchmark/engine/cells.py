"""A grid's cells: one method × countermeasure × seed (× poison ratio × victim) as names (`Cell`), and the same cell
resolved once, before any work, into its plugins, identity and id (`ResolvedCell`), which executors and tools take."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..identity import digest
from ..plugins import Countermeasure, Method
from ..registry import models
from ..store.keys import cell_identity
from .config import GridConfig


@dataclass(frozen=True)
class Cell:
    """A cell as the user names it."""

    method: str
    countermeasure: str
    seed: int
    poison_ratio: float = 1.0  # the share of the training set that is protected; the rest stays clean
    model: str | None = None  # the victim; None: the preset's

    def resolve(self, config: GridConfig, method: Method | None = None,
                countermeasure: Countermeasure | None = None) -> ResolvedCell:
        """This cell in `config`: its plugins built (or the given instances), its victim, identity and id."""
        method = method or config.method(self.method)
        countermeasure = countermeasure or config.countermeasure(self.countermeasure)
        victim = self.model or config.preset_obj.model
        identity = cell_identity(config.parts, models.get(victim), method, countermeasure, self.seed, self.poison_ratio)
        ratio = "" if self.poison_ratio == 1.0 else f"/ratio{self.poison_ratio:g}"
        readable = f"{config.dataset}/{config.preset_obj.name}/{victim}/{method.name}/{self.countermeasure}/seed{self.seed}{ratio}"
        return ResolvedCell(self, method, countermeasure, victim, identity, f"{readable}/{digest(identity)}")


@dataclass(frozen=True, eq=False)
class ResolvedCell:
    """A cell with everything that decides its number settled: the plugin instances with their effective settings,
    the victim's registered name, the identity and the cell id. Equal (and hashed) by cell id."""

    cell: Cell
    method: Method
    countermeasure: Countermeasure
    victim: str
    identity: dict[str, Any]
    cell_id: str

    @property
    def set_key(self) -> tuple[str, int]:
        """The protected set it trains on: (method as named, seed)."""
        return self.cell.method, self.cell.seed

    def fresh_countermeasure(self) -> Countermeasure:
        """A copy of the countermeasure for one cell's `setup`, so no cell sees state another cell's setup left."""
        return copy.copy(self.countermeasure)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResolvedCell) and other.cell_id == self.cell_id

    def __hash__(self) -> int:
        return hash(self.cell_id)


def expand_cells(
    method_names: list[str], countermeasure_names: list[str], seeds: list[int], ratios: list[float] = (1.0,),
    victims: list[str | None] = (None,),
) -> list[Cell]:
    """Every combination, victims outermost and countermeasures innermost."""
    return [Cell(m, d, s, r, v) for v in victims for r in ratios for s in seeds for m in method_names
            for d in countermeasure_names]


def resolve_cells(cells: list[Cell], config: GridConfig) -> list[ResolvedCell]:
    """Each cell resolved, every plugin built once per name (cells of one method share its instance)."""
    built_methods = {name: config.method(name) for name in dict.fromkeys(c.method for c in cells)}
    built_cms = {name: config.countermeasure(name) for name in dict.fromkeys(c.countermeasure for c in cells)}
    return [c.resolve(config, built_methods[c.method], built_cms[c.countermeasure]) for c in cells]
