"""A profile's record: each stage's timing and where it comes from, the cost of one cell per countermeasure, the
grid time projected from them (a list schedule over `--jobs`), and its text."""
from __future__ import annotations

import dataclasses
import heapq
import os
from dataclasses import dataclass, field
from typing import Any

from ..identity import git_state
from ..progress import clock

MEASURED, RECORDED, CACHED = "measured", "recorded", "cached"  # where a stage's seconds come from


@dataclass(frozen=True)
class Timed:
    """Seconds of one stage and where they come from: measured here, recorded in the cache, or a cache load."""

    seconds: float
    source: str = MEASURED


@dataclass(frozen=True)
class CountermeasureCost:
    """One countermeasure's measured pre-processing and training epoch."""

    name: str
    family: str
    stages: list[str]
    preprocess_s: float
    epoch_s: float  # one training epoch of the preset's victim, the mean of the epochs measured
    epochs_measured: int


@dataclass(frozen=True)
class EvaluationCost:
    """One clean test-set evaluation, the training-set evaluation, and how many test evaluations a cell runs."""

    test_s: float
    train_s: float
    evaluations: int

    @property
    def cell_s(self) -> float:
        """The evaluations of one cell."""
        return self.evaluations * self.test_s + self.train_s


@dataclass
class Profile:
    """Everything `profile` measured, and the grid time it projects."""

    preset: str
    dataset: str
    device: str
    device_name: str
    threads: int
    epochs: int  # epochs of the preset's schedule (the projection's)
    epochs_measured: int
    methods: list[str]
    trained_on: str  # the method whose protected set every countermeasure pre-processed and trained on
    cache: str  # "temporary", or the cache folder read with use_cache
    surrogate: dict[str, Timed] = field(default_factory=dict)  # arch → fit
    surrogate_used_by: list[str] = field(default_factory=list)  # methods that asked for a surrogate when generating
    generation: dict[str, Timed] = field(default_factory=dict)
    prepare: dict[str, Timed] = field(default_factory=dict)  # countermeasures that override `prepare`
    countermeasures: dict[str, CountermeasureCost] = field(default_factory=dict)
    evaluation: EvaluationCost = EvaluationCost(0.0, 0.0, 0)
    load_average: list[float] = field(default_factory=list)  # 1-minute load at the start and at the end
    wall_s: float = 0.0

    @property
    def surrogate_counted(self) -> bool:
        """Whether the projection counts the surrogate: a generated method asked for it, or a set came cached."""
        # a cached set's generation may have needed it; the profile cannot tell
        return bool(self.surrogate_used_by) or any(t.source != MEASURED for t in self.generation.values())

    def cell_s(self, name: str) -> float:
        """One cell of countermeasure `name` at the preset: pre-processing + epochs × epoch + evaluations."""
        cost = self.countermeasures[name]
        return cost.preprocess_s + self.epochs * cost.epoch_s + self.evaluation.cell_s

    def projection(self) -> dict[str, float]:
        """One seed of the grid methods × countermeasures at `--jobs 1`, in seconds, and its parts."""
        parts = {
            "generation_s": sum(t.seconds for t in self.generation.values()),
            "surrogate_s": sum(t.seconds for t in self.surrogate.values()) if self.surrogate_counted else 0.0,
            "prepare_s": sum(t.seconds for t in self.prepare.values()),
            "cells_s": len(self.methods) * sum(self.cell_s(n) for n in self.countermeasures),
        }
        return {"cells": len(self.methods) * len(self.countermeasures), **parts, "total_s": sum(parts.values())}

    def grid_wall_s(self, jobs: int) -> float:
        """One seed at `--jobs N` as the scheduler orders it (benchmark/engine/local.py): sets, the surrogate and
        prepares first, the longest first; each method's cells once its set and their prepare are done, the
        longest first; N tasks side by side each as fast as one alone (so a bound from below)."""
        first = [(t.seconds, ("set", n)) for n, t in self.generation.items()]
        first += [(t.seconds, ("prepare", n)) for n, t in self.prepare.items()]
        if self.surrogate_counted:
            first += [(t.seconds, ("surrogate", n)) for n, t in self.surrogate.items()]
        free = [0.0] * jobs  # when each worker is next free
        done: dict[tuple[str, str], float] = {}
        for seconds, key in sorted(first, key=lambda item: -item[0]):
            start = heapq.heappop(free)
            done[key] = start + seconds
            heapq.heappush(free, done[key])
        cells = sorted(((self.cell_s(c), max(done[("set", m)], done.get(("prepare", c), 0.0)))
                        for m in self.methods for c in self.countermeasures), key=lambda cell: (cell[1], -cell[0]))
        waiting: list[float] = []  # −seconds of the cells released and not started, longest first
        end, i = max(done.values(), default=0.0), 0
        while i < len(cells) or waiting:
            now = heapq.heappop(free)
            if not waiting:  # idle until the next cell is released
                now = max(now, cells[i][1])
            while i < len(cells) and cells[i][1] <= now:
                heapq.heappush(waiting, -cells[i][0])
                i += 1
            finish = now - heapq.heappop(waiting)
            end = max(end, finish)
            heapq.heappush(free, finish)
        return end

    def as_dict(self) -> dict[str, Any]:
        """The JSON `--out` writes: the measurements, each cell's projected seconds and the projection."""
        commit, dirty = git_state()
        record = dataclasses.asdict(self)
        record["evaluation"]["cell_s"] = self.evaluation.cell_s
        for name, cost in record["countermeasures"].items():
            cost["cell_s"] = self.cell_s(name)
        return {**record, "surrogate_counted": self.surrogate_counted, "projection": self.projection(),
                "grid_wall_s_at_jobs": {n: self.grid_wall_s(n) for n in sorted({1, 2, os.cpu_count() or 1})},
                "git_commit": commit, "git_dirty": dirty}


def _share(seconds: float, total: float) -> str:
    return f"{100 * seconds / total:.1f} %" if total > 0 else "-"


def render(profile: Profile) -> str:
    """The text `profile` prints: shared work, cells per countermeasure, the evaluation and the projection."""
    from tabulate import tabulate

    proj = profile.projection()
    total, m = proj["total_s"], len(profile.methods)
    shared = [["surrogate", arch, t.seconds, t.source,
               _share(t.seconds, total) if profile.surrogate_counted else "not counted"]
              for arch, t in profile.surrogate.items()]
    for stage, timed in (("generate", profile.generation), ("prepare", profile.prepare)):
        shared += [[stage, name, t.seconds, t.source, _share(t.seconds, total)] for name, t in timed.items()]
    cells = [[c.name, c.family, ",".join(c.stages) or "-", c.preprocess_s, c.epoch_s, profile.cell_s(c.name),
              m * profile.cell_s(c.name), _share(m * profile.cell_s(c.name), total)]
             for c in profile.countermeasures.values()]
    ev = profile.evaluation
    load = " → ".join(f"{x:.2f}" for x in profile.load_average)
    return "\n".join([
        f"profile of preset {profile.preset} ({profile.dataset}) on {profile.device} ({profile.device_name}), "
        f"{profile.threads} torch thread(s), load average {load}; cache: {profile.cache}",
        "",
        tabulate(shared, headers=["stage", "name", "seconds", "source", "share of grid"], floatfmt=".2f"),
        "",
        f"cells, on {profile.trained_on}'s protected set; epoch s: mean of {profile.epochs_measured} measured; "
        f"cell s = pre-process + {profile.epochs} × epoch + evaluation ({ev.cell_s:.2f} s)",
        tabulate(cells, headers=["countermeasure", "family", "stages", "pre-process s", "epoch s", "cell s",
                                 f"× {m} methods s", "share of grid"], floatfmt=".2f"),
        "",
        f"evaluation per cell: {ev.evaluations} × test set {ev.test_s:.2f} s + training set {ev.train_s:.2f} s "
        f"= {ev.cell_s:.2f} s",
        f"projected grid, one seed, --jobs 1: {m} methods × {len(profile.countermeasures)} countermeasures = "
        f"{proj['cells']} cells, {clock(total)} ({total:.0f} s: generation {proj['generation_s']:.0f} s, surrogate "
        f"{proj['surrogate_s']:.0f} s, prepares {proj['prepare_s']:.0f} s, cells {proj['cells_s']:.0f} s); "
        f"profiled in {clock(profile.wall_s)} with {profile.threads} thread(s)",
        "at --jobs N, ordered as the scheduler does, N tasks side by side each as fast as alone (a lower bound): "
        + ", ".join(f"{n}: {clock(profile.grid_wall_s(n))}" for n in sorted({1, 2, os.cpu_count() or 1})),
    ])
