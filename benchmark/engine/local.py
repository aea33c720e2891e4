"""The local executor: protected sets, countermeasure preparations and cells as one task graph, run here
(`--jobs 1`) or on a pool of worker processes, each task with a fixed number of torch threads."""
from __future__ import annotations

import copy
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
from ..plugins import Countermeasure, Method
from .cells import ResolvedCell
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


def make_set(config: GridConfig, method: Method, seed: int, progress: Callable[..., Any] = quiet) -> dict[str, Any]:
    """Make one protected set (or find it in the cache); only its record is returned, the images stay cached."""
    start = time.perf_counter()
    _, gen = protected_set(config, method, seed, progress)
    return {"cached": gen["cached"], "key": gen["key"], "seconds": time.perf_counter() - start}


def prepare_countermeasure(config: GridConfig, countermeasure: Countermeasure,
                           progress: Callable[..., Any] = quiet) -> float:
    """Build what a countermeasure's cells share (into the cache); returns the seconds it took."""
    start = time.perf_counter()
    num_classes = load_splits(config.dataset, config.data_root, config.preset)[0].num_classes
    # on a copy: what `prepare` keeps on the instance must not reach the cells here when it cannot in a worker
    copy.copy(countermeasure).prepare(make_context(config, 0, num_classes, progress))
    return time.perf_counter() - start


def set_finished(log: GridLog, config: GridConfig, key: tuple[str, int], method: Method, value: dict[str, Any] | None,
                 error: BaseException | None) -> None:
    """Report a finished set task and draw its gallery here, where the run folder is."""
    method_name, seed = key
    if error is not None:
        log.protected(method_name, seed, f"failed: {type(error).__name__}")
        return
    save_gallery(log.run_dir, config, method, seed, value["key"])
    log.protected(method_name, seed, "cached" if value["cached"] else f"generated in {clock(value['seconds'])}",
                  None if value["cached"] else value["seconds"])


def run_local(pending: list[ResolvedCell], sets: dict[tuple[str, int], Method], prepares: dict[str, Countermeasure],
              config: GridConfig, jobs: int, log: GridLog, progress: Callable[..., Any] = quiet) -> None:
    """Every set, prepare and pending cell, a cell once its set and its countermeasure's prepare have finished
    well (a cell whose set or prepare failed gets a failed row): here one after another (`jobs` 1, the plugins'
    own bars drawn with `progress`), else on `jobs` worker processes, the longest work first."""
    threads = task_threads(config.torch_device, jobs)
    graph = _Graph(pending, sets, config, log)
    first = [("set", config, s, method) for s, method in sets.items()]
    first += [("prepare", config, n, cm) for n, cm in prepares.items()]
    if jobs <= 1:
        with torch_threads(threads):
            for task in first:
                graph.finished(task[0], task[2], *_attempt(task, progress))
            while graph.queue:
                task = graph.queue.popleft()
                graph.finished(task[0], task[2], *_attempt(task, progress))
        return
    for task in first:  # prepares before any seed's sets: every seed's cells need them
        kind, _, key, plugin = task
        cost, seed = (plugin.cost, key[1]) if kind == "set" else (plugin.prepare_cost, -math.inf)
        graph.queue.push(task, cost, first=True, seed=seed)
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

    def __init__(self, pending: list[ResolvedCell], sets: dict[tuple[str, int], Method], config: GridConfig,
                 log: GridLog) -> None:
        self.config, self.log, self.queue, self.sets = config, log, TaskQueue(), sets
        self.waiting: dict[tuple[str, int], list[ResolvedCell]] = defaultdict(list)
        for cell in pending:
            self.waiting[cell.set_key].append(cell)
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
            set_finished(self.log, self.config, key, self.sets[key], value, error)
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
                name = cell.cell.countermeasure
                if key not in self.outcome or name not in self.outcome:
                    still.append(cell)
                    continue
                error = self.outcome[key] or self.outcome[name]
                if error is not None:
                    self.log.record(cell, failed_row(cell, self.config, error))
                else:
                    self.running += 1
                    self.queue.push(("cell", self.config, cell, frozenset(self.fresh)), cell.countermeasure.cost,
                                    seed=cell.cell.seed)
            self.waiting[key] = still


def _piece(task: tuple[str, GridConfig, Any, Any], progress: Callable[..., Any] = quiet) -> Any:
    """One task of the graph, in whatever process runs it (a failing cell returns its failed row): (kind, config,
    key, what it needs: the set's method, the prepare's countermeasure, or the sets this run generated)."""
    kind, config, key, extra = task
    if kind == "set":
        return make_set(config, extra, key[1], progress)
    if kind == "prepare":
        return prepare_countermeasure(config, extra, progress)
    return run_task((key, config, extra), progress)


def _attempt(task: tuple[str, GridConfig, Any, Any], progress: Callable[..., Any]) -> tuple[Any, BaseException | None]:
    """(the task's result, None), or (None, the exception it raised), run in this process."""
    try:
        return _piece(task, progress), None
    except Exception as exc:  # a failed set or prepare fails only its cells
        return None, exc
