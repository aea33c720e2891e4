"""How a grid reports progress: one bar (on a terminal) or one plain line per finished item (otherwise), and
one ETA for the whole grid from its start: the plugins' cost hints times the victims' training time measured
here, corrected per cost class by the measured time of the pieces that finish."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm.auto import tqdm


def clock(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class GridProgress:
    """Counts finished artifacts (protected sets, prepared countermeasures) and cells, each weighted by its
    estimated share of the wall time, and reports each with the share of the estimated work done and the time left.

    The time left is measured per cost class (a method's sets, a countermeasure family's cells on one victim, ...):
    once a piece of a class finishes with its own compute seconds, every piece of that class left is scaled by the
    class's measured-over-estimated ratio; a class with none finished yet takes the ratio of its kind (artifact or
    cell), else the plan's own estimate. Work still queued or running counts in full, and when fewer pieces are left
    than `slots` they no longer share the wall time."""

    def __init__(self, artifact_s: float, cell_s: float, artifacts: int, cells: int,
                 stream: TextIO | None = None, bar: bool | None = None,
                 classes: dict[str, tuple[str, float, int]] | None = None, slots: int = 1) -> None:
        self.stream = stream or sys.stderr
        self.left = {"artifact": artifact_s, "cell": cell_s}
        self.total_s = artifact_s + cell_s
        self.count = {"artifact": 0, "cell": 0}
        self.of = {"artifact": artifacts, "cell": cells}
        self.slots = max(1, slots)
        # class → [kind, estimate left, pieces left, estimate of the finished pieces, their measured wall share]
        self.classes = {name: [kind, est, n, 0.0, 0.0] for name, (kind, est, n) in (classes or {}).items()}
        for kind in ("artifact", "cell"):  # pieces reported without a class fall into their kind's own
            self.classes.setdefault(kind, [kind, 0.0, 0, 0.0, 0.0])
        if classes is None:
            self.classes["artifact"][1:3] = [artifact_s, artifacts]
            self.classes["cell"][1:3] = [cell_s, cells]
        self.start = time.perf_counter()
        use_bar = self.stream.isatty() if bar is None else bar
        self.bar = tqdm(total=round(self.total_s, 1) or 1, desc="grid", file=self.stream,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}") if use_bar else None
        self._show("")

    def _ratio(self, name: str) -> float:
        """Measured over estimated time of the class's finished pieces, else of its kind's, else 1 (the plan's)."""
        kind = self.classes[name][0]
        for members in ([self.classes[name]], [c for c in self.classes.values() if c[0] == kind]):
            estimated, measured = sum(c[3] for c in members), sum(c[4] for c in members)
            if estimated > 0:
                return measured / estimated
        return 1.0

    def estimate_s(self) -> float:
        """Seconds left: each class's estimate left times its measured ratio; before any piece reports its own
        seconds, the estimates scaled by the wall-clock pace of what finished (which includes parallel jobs)."""
        if all(c[3] == 0 for c in self.classes.values()):
            left = self.left["artifact"] + self.left["cell"]
            done = self.total_s - left
            return left * ((time.perf_counter() - self.start) / done if done > 0 else 1.0)
        left_s = sum(c[1] * self._ratio(name) for name, c in self.classes.items() if c[2] > 0)
        pieces = sum(c[2] for c in self.classes.values())
        return left_s * (self.slots / pieces if 0 < pieces < self.slots else 1.0)

    def advance(self, kind: str, estimate_s: float, what: str, cost_class: str | None = None,
                seconds: float | None = None) -> None:
        """One `kind` ("artifact" or "cell") finished; `estimate_s` is its estimated share of the wall time,
        `cost_class` the class it was estimated in, `seconds` its own compute time (None: not measured); `what`
        says which and how it went."""
        self.count[kind] += 1
        self.left[kind] = max(0.0, self.left[kind] - estimate_s)
        entry = self.classes.setdefault(cost_class or kind, [kind, 0.0, 0, 0.0, 0.0])
        entry[1], entry[2] = max(0.0, entry[1] - estimate_s), max(0, entry[2] - 1)
        if seconds is not None and estimate_s > 0:
            entry[3] += estimate_s
            entry[4] += seconds / self.slots
        if self.bar is not None:
            self.bar.update(round(estimate_s, 1))
        self._show(f"{kind} {self.count[kind]}/{self.of[kind]} {what}")

    def _show(self, what: str) -> None:
        done = 1 - (self.left["artifact"] + self.left["cell"]) / self.total_s if self.total_s else 1.0
        status = (f"artifacts {self.count['artifact']}/{self.of['artifact']} · cells {self.count['cell']}/{self.of['cell']} · "
                  f"{clock(time.perf_counter() - self.start)} elapsed · about {clock(self.estimate_s())} left")
        if self.bar is not None:
            self.bar.set_postfix_str(status)
        elif what:
            print(f"[{done:4.0%}] {what} · {status}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def quiet(it: Any = None, **kw: Any) -> Any:
    """A progress-bar factory that shows nothing."""
    return it
