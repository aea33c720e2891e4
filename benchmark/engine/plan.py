"""A grid's plan: the estimated seconds of each pending piece, and the text the driver prints before it starts."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..presets import PLUMBING_ONLY
from ..progress import clock
from ..store.cache import spec_key
from ..plugins import Countermeasure, Method
from .cells import ResolvedCell
from .config import GridConfig
from .recipe import protected_spec


@dataclass
class Plan:
    """Estimated seconds of each piece of pending work, and the victims' measured training time."""

    sets: dict[tuple[str, int], float]
    prepares: dict[str, float]
    cells: dict[ResolvedCell, float]
    victim_s: dict[str, float]  # one training under `none`, measured where the cells run
    cached: int  # protected sets already in the cache
    # each piece's cost class: a method's sets, a countermeasure's prepare, a countermeasure family on one victim
    cost_class: dict[Any, str] = field(default_factory=dict)
    slots: int = 1  # pieces at a time

    def spread(self, slots: int) -> Plan:
        """The same work with `slots` pieces at a time: each piece's estimate becomes its share of the wall time."""
        return Plan({k: v / slots for k, v in self.sets.items()}, {k: v / slots for k, v in self.prepares.items()},
                    {k: v / slots for k, v in self.cells.items()}, self.victim_s, self.cached, self.cost_class, slots)

    def classes(self) -> dict[str, tuple[str, float, int]]:
        """Per cost class: its kind (artifact or cell), its estimated seconds and its number of pieces."""
        totals: dict[str, list] = {}
        for kind, pieces in (("artifact", self.sets), ("artifact", self.prepares), ("cell", self.cells)):
            for key, seconds in pieces.items():
                entry = totals.setdefault(self.cost_class.get(key, kind), [kind, 0.0, 0])
                entry[1] += seconds
                entry[2] += 1
        return {name: (kind, seconds, n) for name, (kind, seconds, n) in totals.items()}


def estimate(config: GridConfig, pending: list[ResolvedCell], sets: dict[tuple[str, int], Method],
             prepares: dict[str, Countermeasure]) -> Plan:
    """Estimates from the plugins' cost hints and each victim's training time measured on this device."""
    from .cost import measure_model

    p = config.preset_obj
    victims = sorted({c.victim for c in pending} | {p.model})
    victim_s = {v: measure_model(v, p, config.torch_device).cell_s for v in victims}
    cached = {s for s, method in sets.items()
              if config.cache.paths("protected", spec_key(protected_spec(config, method, s[1])))[0].exists()}
    classes: dict[Any, str] = {s: f"set:{s[0]}" for s in sets} | {n: f"prepare:{n}" for n in prepares}
    classes |= {c: f"cell:{c.countermeasure.family}/{c.victim}" for c in pending}
    return Plan(
        sets={s: 0.0 if s in cached else method.cost * victim_s[p.model] for s, method in sets.items()},
        prepares={n: cm.prepare_cost * victim_s[p.model] for n, cm in prepares.items()},
        cells={c: c.countermeasure.cost * victim_s[c.victim] for c in pending},
        victim_s=victim_s, cached=len(cached), cost_class=classes,
    )


def plan_text(config: GridConfig, total: int, pending: int, plan: Plan, how: str) -> str:
    """What the grid is about to do and roughly how long it takes `how` it runs (`--jobs 2`)."""
    p = config.preset_obj
    estimate = sum(plan.sets.values()) + sum(plan.prepares.values()) + sum(plan.cells.values())
    victims = ", ".join(f"{v} {s:.0f} s" for v, s in plan.victim_s.items())
    lines = [
        f"preset {p.name}: {p.summary}",
        f"{total} cells: {pending} to run, {total - pending} already finished; {len(plan.sets)} protected set(s) "
        f"({plan.cached} cached), {sum(v > 0 for v in plan.prepares.values())} countermeasure(s) to prepare",
        f"estimated time: about {clock(estimate)} at {how} (one victim training measured: {victims}; "
        "the rest from rough per-plugin cost hints, refined as cells finish)",
    ]
    if p.name in PLUMBING_ONLY:
        lines.append(f"preset {p.name}: the numbers test the plumbing only; use --preset quick for results")
    cores = os.cpu_count() or 1
    if config.torch_device.type == "cpu" and how == "--jobs 1" and cores > 1:
        lines.append(f"each task computes on one thread: --jobs {cores} would use all {cores} cores of this machine")
    return "\n".join(lines)
