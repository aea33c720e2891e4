"""A grid's cells: one method × countermeasure × seed (× poison ratio × victim), its identity and id."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..identity import digest
from ..registry import models
from ..store.keys import cell_identity
from .config import GridConfig


@dataclass(frozen=True)
class Cell:
    method: str
    countermeasure: str
    seed: int
    poison_ratio: float = 1.0  # the share of the training set that is protected; the rest stays clean
    model: str | None = None  # the victim; None: the preset's

    def victim(self, config: GridConfig) -> str:
        """The registered name of the network this cell trains."""
        return self.model or config.preset_obj.model

    def identity(self, config: GridConfig) -> dict[str, Any]:
        """Everything that decides this cell's number."""
        return cell_identity(config.parts, models.get(self.victim(config)), config.method(self.method),
                             config.countermeasure(self.countermeasure), self.seed, self.poison_ratio)

    def cell_id(self, config: GridConfig, identity: dict[str, Any] | None = None) -> str:
        """A readable path of names, then the full SHA-256 of the identity."""
        p = config.preset_obj
        ratio = "" if self.poison_ratio == 1.0 else f"/ratio{self.poison_ratio:g}"
        method = config.method(self.method).name
        readable = f"{config.dataset}/{p.name}/{self.victim(config)}/{method}/{self.countermeasure}/seed{self.seed}{ratio}"
        return f"{readable}/{digest(identity or self.identity(config))}"


def expand_cells(
    method_names: list[str], countermeasure_names: list[str], seeds: list[int], ratios: list[float] = (1.0,),
    victims: list[str | None] = (None,),
) -> list[Cell]:
    return [Cell(m, d, s, r, v) for v in victims for r in ratios for s in seeds for m in method_names
            for d in countermeasure_names]
