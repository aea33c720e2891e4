"""The grid as a Ray task graph: one task per protected set and per countermeasure's `prepare`, and one per cell
that starts once both of its own are done, on a new local Ray or an existing cluster whose nodes share the artifact
cache folder. The driver alone writes the rows."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch

from ..data import resolve_data_root
from ..heap import keep_freed_memory
from ..plugins import Countermeasure, Method
from ..progress import clock
from .cells import ResolvedCell
from .config import ENV_CACHE_DIR, GridConfig
from .local import CPU_THREADS, make_set, prepare_countermeasure, set_finished
from .log import GridLog
from .plan import Plan, estimate
from .recipe import failed_row, run_task

CONNECT_TIMEOUT_S = 10
PROBE_TIMEOUT_S = 120  # a node's first task starts a Python worker; a busy node can take a while


@dataclass(frozen=True)
class RayOptions:
    """Where the grid runs (None: $RAY_ADDRESS, else the cluster `ray start` last started on this machine, else a
    new local Ray on all its CPUs and GPUs) and what each task holds: whole CPUs (its torch threads) and a share
    of a GPU."""

    address: str | None = None
    cpus_per_cell: int = 1
    gpus_per_cell: float = 0.0

    def __post_init__(self) -> None:
        require_ray()
        if self.cpus_per_cell < 1:
            raise ValueError(f"--cpus-per-cell must be at least 1, got {self.cpus_per_cell}")
        if not math.isfinite(self.gpus_per_cell) or self.gpus_per_cell < 0:
            raise ValueError(f"--gpus-per-cell must be a finite number of at least 0, got {self.gpus_per_cell}")
        if self.gpus_per_cell > 1 and not float(self.gpus_per_cell).is_integer():
            raise ValueError(f"--gpus-per-cell above 1 must be a whole number (Ray's rule), got {self.gpus_per_cell:g}")


class RemoteTraceback(Exception):
    """The traceback of an exception raised on a Ray worker, as Ray formatted it there."""


def require_ray() -> ModuleType:
    """The ray module, or a clear error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs Ray, which is not installed: pip install -e '.[ray]'") from None
    return ray


def worker_config(config: GridConfig, options: RayOptions) -> GridConfig:
    """`config` as every task gets it: absolute cache and data folders (a worker's environment and working
    folder are not the driver's), and a device that fits the cells' GPU share (checked)."""
    if config.device.startswith("cuda:"):
        raise ValueError(f"--device {config.device}: under --executor ray a cell sees only the GPU Ray gives it; "
                         "use --device auto or cuda with --gpus-per-cell")
    if config.device == "cuda" and not options.gpus_per_cell:
        raise ValueError("--device cuda under --executor ray needs --gpus-per-cell: Ray hides every GPU from a task "
                         "that asks for none")
    if config.device == "cpu" and options.gpus_per_cell:
        raise ValueError("--gpus-per-cell with --device cpu would hold GPUs that no cell uses")
    return dataclasses.replace(config, cache_dir=str(config.cache.root.expanduser().absolute()),
                               data_root=str(resolve_data_root(config.data_root).absolute()))


@contextmanager
def connected(options: RayOptions, config: GridConfig) -> Iterator[None]:
    """Ray, checked before any work: a connection already made (a notebook, a test) as it is, else the cluster at
    `options.address`, else a new local Ray, shut down afterwards. Some node must have room for one cell, and
    every such node must see the cache folder."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        _init(ray, options.address)
    try:
        _check_visible(ray, config.cache.root, _cell_nodes(ray, options))
        yield
    finally:
        if started:
            ray.shutdown()


def _init(ray: ModuleType, address: str | None) -> None:
    """Connect to the cluster at `address` (else $RAY_ADDRESS), or start a local Ray when there is none."""
    address = address or os.environ.get("RAY_ADDRESS")
    if address and "://" not in address and ":" in address:  # HOST:PORT; ray.init would retry it for minutes
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except (OSError, ValueError) as exc:
            raise ValueError(f"Ray address {address}: no Ray cluster answers there ({exc}); start one with "
                             "`ray start --head` (docs/cluster.md)") from None
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ValueError(f"Ray address {address}: no Ray cluster there ({exc}); start one with `ray start --head` "
                         "(docs/cluster.md)") from None


def _cell_nodes(ray: ModuleType, options: RayOptions) -> list[dict[str, Any]]:
    """The live nodes with room for one cell; none at all is an error, since the tasks would wait for ever."""
    alive = [n for n in ray.nodes() if n["Alive"]]
    nodes = [n for n in alive if n["Resources"].get("CPU", 0) >= options.cpus_per_cell
             and n["Resources"].get("GPU", 0) >= options.gpus_per_cell]
    if not nodes:
        have = "; ".join(f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPU, "
                         f"{n['Resources'].get('GPU', 0):g} GPU" for n in alive)
        raise ValueError(f"no Ray node has room for one cell (--cpus-per-cell {options.cpus_per_cell}, "
                         f"--gpus-per-cell {options.gpus_per_cell:g}); the nodes: {have}")
    return nodes


def _check_visible(ray: ModuleType, folder: Path, nodes: list[dict[str, Any]]) -> None:
    """Fail, naming `folder`, unless a task on each node reads the probe file written here into it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = folder / f".ray-probe-{uuid.uuid4().hex}"
    probe.write_text(probe.name)
    try:
        refs = [ray.remote(_reads).options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(str(probe)) for n in nodes]
        try:
            seen = ray.get(refs, timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ValueError(f"Ray nodes did not answer within {PROBE_TIMEOUT_S} s whether they see the cache "
                             f"folder {folder}") from None
    finally:
        probe.unlink(missing_ok=True)
    blind = [n["NodeManagerAddress"] for n, ok in zip(nodes, seen) if not ok]
    if blind:
        raise ValueError(f"the cache folder {folder} is not visible on Ray node(s) {', '.join(blind)}: put it on a "
                         f"file system every node mounts at the same path (--cache-dir or ${ENV_CACHE_DIR}; "
                         "docs/cluster.md)")


def _reads(path: str) -> bool:
    """Whether this node reads the probe file at `path` (it holds its own name)."""
    probe = Path(path)
    return probe.is_file() and probe.read_text() == probe.name


def plan_on_ray(options: RayOptions, config: GridConfig, pending: list[ResolvedCell],
                sets: dict[tuple[str, int], Method], prepares: dict[str, Countermeasure]) -> tuple[Plan, str]:
    """The grid's estimates, measured by a task like a cell's (on its kind of device, which the driver may
    lack) and spread over the cells the cluster runs at once, with words that say how it runs."""
    ray = require_ray()
    plan = ray.get(_task(ray, _measured, options).remote(options.cpus_per_cell, config, pending, sets, prepares))
    resources = ray.cluster_resources()
    slots = resources.get("CPU", 0) // options.cpus_per_cell
    if options.gpus_per_cell:
        slots = min(slots, resources.get("GPU", 0) // options.gpus_per_cell)
    slots = max(1, int(slots))
    return plan.spread(slots), f"--executor ray ({slots} cells at a time)"


def run_on_ray(pending: list[ResolvedCell], sets: dict[tuple[str, int], Method], prepares: dict[str, Countermeasure],
               config: GridConfig, options: RayOptions, log: GridLog) -> None:
    """Submit every set, prepare and cell task at once (a cell after its set and its prepare) and record each as
    it finishes; on any interruption (Ctrl-C) cancel what has not finished, keeping the rows recorded."""
    ray = require_ray()
    # A CPU-only cell computes on one thread whatever it holds, so that its numbers match a local run's.
    threads = options.cpus_per_cell if options.gpus_per_cell else CPU_THREADS
    set_task, prepare_task, cell_task = (_task(ray, fn, options) for fn in (_protected, _prepare, _cell))
    set_refs = {s: set_task.remote(config, method, s[1], threads) for s, method in sets.items()}
    prepare_refs = {n: prepare_task.remote(config, cm, threads) for n, cm in prepares.items()}
    waiting: dict[Any, tuple[str, Any]] = {r: ("set", s) for s, r in set_refs.items()}
    waiting |= {r: ("prepare", n) for n, r in prepare_refs.items()}
    waiting |= {cell_task.remote(c, config, threads, set_refs[c.set_key], prepare_refs[c.cell.countermeasure]):
                ("cell", c) for c in pending}
    ready: set[Any] = set()  # the sets and prepares that finished well
    try:
        while waiting:
            (ref,), _ = ray.wait(list(waiting), num_returns=1)
            kind, key = waiting.pop(ref)
            try:
                value, error = ray.get(ref), None
            except ray.exceptions.RayError as exc:
                value, error = None, _original(exc)
            if error is None and kind != "cell":
                ready.add(key)
            if kind == "cell":
                running = sum(k == "cell" and c.set_key in ready and c.cell.countermeasure in ready
                              for k, c in waiting.values())
                log.record(key, value if error is None else failed_row(key, config, error), running)
            elif kind == "set":
                set_finished(log, config, key, sets[key], value, error)
            else:
                log.prepared(key, f"failed: {type(error).__name__}" if error else f"ready in {clock(value)}",
                             None if error else value)
    except BaseException:
        for ref in waiting:
            ray.cancel(ref, force=True)
        raise


def _task(ray: ModuleType, fn: Callable[..., Any], options: RayOptions) -> Any:
    """`fn` as a Ray task holding one cell's CPUs and GPU share, run again once if its worker dies, never
    because of an exception it raised."""
    return ray.remote(fn).options(num_cpus=options.cpus_per_cell, num_gpus=options.gpus_per_cell, max_retries=1,
                                  retry_exceptions=False)


def _original(exc: BaseException) -> BaseException:
    """The exception a task raised, with Ray's remote traceback chained as its cause; Ray's own errors (a
    worker that died again on its retry, a cancelled task) as they are."""
    ray = require_ray()
    if not isinstance(exc, ray.exceptions.RayTaskError) or not isinstance(exc.cause, BaseException):
        return exc
    cause = exc.cause
    cause.__cause__ = RemoteTraceback(str(exc))
    return cause


def _compute_here(threads: int) -> None:
    """Set up this worker process for a task: its torch threads, and a heap that keeps freed memory."""
    torch.set_num_threads(threads)
    keep_freed_memory()


def _measured(threads: int, config: GridConfig, pending: list[ResolvedCell], sets: dict[tuple[str, int], Method],
              prepares: dict[str, Countermeasure]) -> Plan:
    """The grid's plan, measured on a worker."""
    _compute_here(threads)
    return estimate(config, pending, sets, prepares)


def _protected(config: GridConfig, method: Method, seed: int, threads: int) -> dict[str, Any]:
    """Make one protected set on a worker (or find it in the cache); only its record travels back."""
    _compute_here(threads)
    return make_set(config, method, seed)


def _prepare(config: GridConfig, countermeasure: Countermeasure, threads: int) -> float:
    """Build on a worker what a countermeasure's cells share (into the cache); returns the seconds it took."""
    _compute_here(threads)
    return prepare_countermeasure(config, countermeasure)


def _cell(cell: ResolvedCell, config: GridConfig, threads: int, generated: dict[str, Any], prepared: float) -> dict[str, Any]:
    """One cell on a worker: its row, ok or failed. Ray runs it once its set (`generated`, that task's record)
    and its countermeasure's prepare (`prepared`, waited for only) have finished well."""
    _compute_here(threads)
    fresh = frozenset() if generated["cached"] else frozenset({cell.set_key})
    return run_task((cell, config, fresh))
