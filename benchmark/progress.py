"""How a grid reports progress: one bar (on a terminal) or one plain line per finished item (otherwise), and
one ETA for the whole grid from its start: the plugins' cost hints times the victims' training time measured
here, corrected by the measured pace once work finishes."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm


def clock(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class GridProgress:
    """Counts finished artifacts (protected sets, prepared countermeasures) and cells, each weighted by its
    estimated seconds, and reports each with the share of the estimated work done and the time left."""

    def __init__(self, artifact_s: float, cell_s: float, artifacts: int, cells: int,
                 stream: TextIO | None = None, bar: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.left = {"artifact": artifact_s, "cell": cell_s}
        self.total_s = artifact_s + cell_s
        self.count = {"artifact": 0, "cell": 0}
        self.of = {"artifact": artifacts, "cell": cells}
        self.start = time.perf_counter()
        use_bar = self.stream.isatty() if bar is None else bar
        self.bar = tqdm(total=round(self.total_s, 1) or 1, desc="grid", file=self.stream,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {postfix}") if use_bar else None
        self._show("")

    def estimate_s(self) -> float:
        """Seconds left: the estimates of what is not done, scaled by the measured pace of what is (which includes
        parallel jobs). Sets, prepares and cells run interleaved, so one pace covers them all."""
        left = self.left["artifact"] + self.left["cell"]
        done = self.total_s - left
        return left * ((time.perf_counter() - self.start) / done if done > 0 else 1.0)

    def advance(self, kind: str, estimate_s: float, what: str) -> None:
        """One `kind` ("artifact" or "cell") finished; `estimate_s` is what it was estimated to take; `what`
        says which and how it went."""
        self.count[kind] += 1
        self.left[kind] = max(0.0, self.left[kind] - estimate_s)
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
