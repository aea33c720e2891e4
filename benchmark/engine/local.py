"""The local executor: protected sets, countermeasure preparations and cells as one task graph, run here
(`--jobs 1`) or on a pool of worker processes, each task with a fixed number of torch threads."""
from __future__ import annotations

import heapq
import itertools
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import torch

from ..data import load_splits
from ..pool import run_parallel
from ..progress import clock, quiet
from .cells import Cell
from .config import GridConfig
from .log import GridLog
from .recipe import failed_row, make_context, protected_set, run_task, save_gallery

CPU_THREADS = 1  # a CPU task's torch threads: results do not depend on --jobs or on the machine's core count


def task_threads(device: torch.device, jobs: int) -> int:
    """Torch threads of one task. On a CPU always `CPU_THREADS`: a convolution's backward splits its sums over
    the threads, so a victim trained at 1 and at 2 threads ends apart (12 points for `dh-8` × `none` at quick,
    docs/variance.md); parallelism comes from `--jobs`. On a GPU the host's cores are shared by the jobs."""
    return CPU_THREADS if device.type == "cpu" else max(1, (os.cpu_count() or 1) // jobs)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` torch threads, then restore the number it found."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_set(config: GridConfig, method_name: str, seed: int, progress: Callable[..., Any] = quiet) -> dict[str, Any]:
    """Make one protected set (or find it in the cache); only its record is returned, the images stay cached."""
    start = time.perf_counter()
    _, gen = protected_set(config, method_name, seed, progress)
    return {"cached": gen["cached"], "key": gen["key"], "seconds": time.perf_counter() - start}


def prepare_countermeasure(config: GridConfig, name: str, progress: Callable[..., Any] = quiet) -> float:
    """Build what a countermeasure's cells share (into the cache); returns the seconds it took."""
    start = time.perf_counter()
    num_classes = load_splits(config.dataset, config.data_root, config.preset)[0].num_classes
    config.countermeasure(name).prepare(make_context(config, 0, num_classes, progress))
    return time.perf_counter() - start


def set_finished(log: GridLog, config: GridConfig, key: tuple[str, int], value: dict[str, Any] | None,
                 error: BaseException | None) -> None:
    """Report a finished set task and draw its gallery here, where the run folder is."""
    method_name, seed = key
    if error is not None:
        log.protected(method_name, seed, f"failed: {type(error).__name__}")
        return
    save_gallery(log.run_dir, config, method_name, seed, value["key"])
    log.protected(method_name, seed, "cached" if value["cached"] else f"generated in {clock(value['seconds'])}",
                  None if value["cached"] else value["seconds"])


def run_local(pending: list[Cell], sets: list[tuple[str, int]], prepares: list[str], config: GridConfig, jobs: int,
              log: GridLog, progress: Callable[..., Any] = quiet) -> None:
    """Every set, prepare and pending cell, a cell once its set and its countermeasure's prepare have finished
    well (a cell whose set or prepare failed gets a failed row): here one after another (`jobs` 1, the plugins'
    own bars drawn with `progress`), else on `jobs` worker processes, the longest work first."""
    threads = task_threads(config.torch_device, jobs)
    graph = _Graph(pending, config, log)
    if jobs <= 1:
        with torch_threads(threads):
            for kind, key in [*(("set", s) for s in sets), *(("prepare", n) for n in prepares)]:
                graph.finished(kind, key, *_attempt((kind, config, key, frozenset()), progress))
            while graph.queue:
                task = graph.queue.popleft()
                graph.finished(task[0], task[2], *_attempt(task, progress))
        return
    for s in sets:
        graph.queue.push(("set", config, s, frozenset()), config.method(s[0]).cost, first=True, seed=s[1])
    for n in prepares:  # before any seed's sets: every seed's cells need them
        graph.queue.push(("prepare", config, n, frozenset()), config.countermeasure(n).prepare_cost, first=True,
                         seed=-math.inf)
    for task, result in run_parallel(_piece, graph.queue, jobs, threads):
        error = result if isinstance(result, BaseException) else None
        graph.finished(task[0], task[2], None if error else result, error)


class TaskQueue:
    """Pending tasks, highest priority first: the lowest seed's, then within a seed sets and prepares (longest
    first) before cells (longest first). A run of several seeds thus finishes one whole seed before the next (an
    interrupted run leaves complete seeds); within one, generation starts on every worker at once and the grid
    does not end waiting on one long cell."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, float, int, Any]] = []
        self._order = itertools.count()

    def push(self, task: Any, cost: float, first: bool = False, seed: float = 0) -> None:
        heapq.heappush(self._heap, (seed, 0 if first else 1, -cost, next(self._order), task))

    def popleft(self) -> Any:
        return heapq.heappop(self._heap)[-1]

    def appendleft(self, task: Any) -> None:
        """Put back a task that could not be handed out: it goes next."""
        heapq.heappush(self._heap, (-math.inf, 0, 0.0, next(self._order), task))

    def __len__(self) -> int:
        return len(self._heap)


class _Graph:
    """Which cells wait on which set and prepare; queues a cell once both have finished well."""

    def __init__(self, pending: list[Cell], config: GridConfig, log: GridLog) -> None:
        self.config, self.log, self.queue = config, log, TaskQueue()
        self.waiting: dict[tuple[str, int], list[Cell]] = defaultdict(list)
        for cell in pending:
            self.waiting[(cell.method, cell.seed)].append(cell)
        self.outcome: dict[Any, BaseException | None] = {}  # a finished set or prepare: None, or its error
        self.fresh: set[tuple[str, int]] = set()  # the sets this run generated
        self.running = 0  # cells queued or running

    def finished(self, kind: str, key: Any, value: Any, error: BaseException | None) -> None:
        if kind == "cell":
            self.running -= 1
            row = failed_row(key, self.config, error) if error is not None else value
            self.log.record(key, row, self.running)
            return
        self.outcome[key] = error
        if kind == "set":
            set_finished(self.log, self.config, key, value, error)
            if error is None and not value["cached"]:
                self.fresh.add(key)
        else:
            self.log.prepared(key, f"failed: {type(error).__name__}" if error else f"ready in {clock(value)}",
                              None if error else value)
        self._release()

    def _release(self) -> None:
        """Queue (or fail) every waiting cell whose set and prepare have both finished."""
        for key, cells in list(self.waiting.items()):
            still = []
            for cell in cells:
                if key not in self.outcome or cell.countermeasure not in self.outcome:
                    still.append(cell)
                    continue
                error = self.outcome[key] or self.outcome[cell.countermeasure]
                if error is not None:
                    self.log.record(cell, failed_row(cell, self.config, error))
                else:
                    self.running += 1
                    cost = self.config.countermeasure(cell.countermeasure).cost
                    self.queue.push(("cell", self.config, cell, frozenset(self.fresh)), cost, seed=cell.seed)
            self.waiting[key] = still


def _piece(task: tuple[str, GridConfig, Any, frozenset], progress: Callable[..., Any] = quiet) -> Any:
    """One task of the graph, in whatever process runs it (a failing cell returns its failed row)."""
    kind, config, key, fresh = task
    if kind == "set":
        return make_set(config, *key, progress)
    if kind == "prepare":
        return prepare_countermeasure(config, key, progress)
    return run_task((key, config, fresh), progress)


def _attempt(task: tuple[str, GridConfig, Any, frozenset], progress: Callable[..., Any]) -> tuple[Any, BaseException | None]:
    """(the task's result, None), or (None, the exception it raised), run in this process."""
    try:
        return _piece(task, progress), None
    except Exception as exc:  # a failed set or prepare fails only its cells
        return None, exc
