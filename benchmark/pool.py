"""A small process pool that survives dead workers and never outlives its driver."""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any, Protocol, TypeVar

from .heap import keep_freed_memory

T = TypeVar("T")
R = TypeVar("R")

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_WATCHDOG_PERIOD_S = 0.5
_TERMINATE_GRACE_S = 1.0


class WorkerDied(RuntimeError):
    """A worker process ended while running a task."""


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    task: tuple[Any] | None = None  # (task,) while it runs one: a task may itself be None


class Queue(Protocol[T]):
    """What `run_parallel` takes tasks from: a `deque`, or anything that hands out its next task the same way."""

    def __len__(self) -> int: ...
    def popleft(self) -> T: ...
    def appendleft(self, task: T) -> None: ...


def run_parallel(fn: Callable[[T], R], tasks: Iterable[T] | Queue[T], jobs: int,
                 threads: int = 1) -> Iterator[tuple[T, R | BaseException]]:
    """Run fn over tasks in up to `jobs` spawned workers, yielding (task, result or exception) as each ends.

    Given a queue (a `deque`, say), the caller may add tasks to it whenever a result is yielded: a task that
    depends on another is queued once that one has ended. A worker with nothing left to do ends at once."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    pending: Queue[T] = tasks if hasattr(tasks, "popleft") else deque(tasks)
    ctx = get_context("spawn")
    workers: list[_Worker] = []
    try:
        while True:
            for w in [w for w in workers if w.task is None]:  # tasks the caller queued since, else nothing to do
                if pending:
                    _assign(w, pending)
                else:  # free its memory now rather than when the slowest task ends
                    workers.remove(w)
                    _stop([w])
            while pending and len(workers) < jobs:
                workers.append(_start(ctx, fn, threads))
                _assign(workers[-1], pending)
            if not workers:
                return
            ready = wait([w.conn for w in workers] + [w.process.sentinel for w in workers])
            for w in [w for w in workers if w.conn in ready or w.process.sentinel in ready]:
                held, reply = w.task, _receive(w)
                if reply is not None:
                    w.task = None
                    if pending:  # before the yield: the worker goes on while the caller handles the result
                        _assign(w, pending)
                    assert held is not None, "a worker replied without holding a task"
                    yield held[0], reply[0]
                    continue
                workers.remove(w)
                _stop([w])
                if held is not None:
                    yield held[0], WorkerDied(f"worker process {w.process.pid} died with "
                                              f"{_describe_exit(w.process.exitcode)} while running this task")
    finally:
        _stop(workers)


def _start(ctx: SpawnContext, fn: Callable[[Any], Any], threads: int) -> _Worker:
    """Start one worker process and return the driver's end of its pipe with it."""
    ours, theirs = ctx.Pipe()
    # daemon: should a generator never be closed, multiprocessing's exit handler terminates the
    # workers instead of joining them forever (the cost: tasks cannot start multiprocessing children).
    process = ctx.Process(target=_worker_main, args=(fn, theirs, os.getpid(), threads), daemon=True)
    process.start()
    theirs.close()
    return _Worker(process, ours)


def _assign(w: _Worker, pending: deque[Any]) -> None:
    """Send the worker the next pending task; a worker found dead leaves it pending."""
    task = pending.popleft()
    try:
        w.conn.send(task)
    except OSError:  # it died since its last reply; its sentinel reports that next
        pending.appendleft(task)
        return
    w.task = (task,)


def _receive(w: _Worker) -> tuple[Any] | None:
    """The worker's reply, (result or exception,), or None when the worker has ended."""
    if not w.conn.poll():  # only its sentinel fired
        return None
    try:
        return (w.conn.recv(),)
    except (EOFError, OSError):
        return None
    except Exception as exc:
        return (RuntimeError(f"the worker's reply could not be unpickled: {exc!r}"),)


def _stop(workers: list[_Worker]) -> None:
    """End the workers now: SIGTERM, a short join, then SIGKILL."""
    for w in workers:
        w.process.terminate()
        w.conn.close()
    deadline = time.monotonic() + _TERMINATE_GRACE_S
    for w in workers:
        w.process.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        if w.process.exitcode is None:
            w.process.kill()
            w.process.join(_TERMINATE_GRACE_S)


def _describe_exit(code: int | None) -> str:
    """'exit code N', naming the signal when the process was killed by one."""
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    text = signal.strsignal(-code) or "unknown signal"
    text = text[:1].lower() + text[1:]
    if -code == signal.SIGKILL:
        text += ", e.g. by the out-of-memory killer"
    return f"exit code {code} ({name}: {text})"


def _worker_main(fn: Callable[[Any], Any], conn: Connection, driver_pid: int, threads: int) -> None:
    """Run the tasks that arrive on conn, one at a time, until the driver closes it."""
    # Ctrl-C reaches the whole process group; only the driver decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_driver(driver_pid)
    import torch  # here, not at the top: a driver has no need of it (seconds saved per driver start)

    torch.set_num_threads(threads)
    keep_freed_memory()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        try:
            reply, ok = fn(task), True
        except BaseException as exc:  # SystemExit too: report it and keep serving
            reply, ok = exc, False
        conn.send_bytes(_encode(reply, ok))


def _encode(reply: Any, ok: bool) -> bytes:
    """Pickle a result or exception; what cannot cross the pipe becomes a RuntimeError with its text."""
    try:
        data = pickle.dumps(reply)
        if not ok:
            pickle.loads(data)  # exceptions with their own __init__ often pickle, then fail to load
        return data
    except Exception:
        text = (f"the result could not be pickled:\n{traceback.format_exc()}" if ok
                else "".join(traceback.format_exception(reply)))
        return pickle.dumps(RuntimeError(text))


def _die_with_driver(driver_pid: int) -> None:
    """Make this worker end when the driver does, even when the driver is SIGKILLed."""
    if sys.platform.startswith("linux"):
        # The kernel sends it when the driver *thread* that started this worker ends, not only the process.
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL))

    def watch() -> None:  # its first look also catches a driver that died before prctl took effect
        while os.getppid() == driver_pid:
            time.sleep(_WATCHDOG_PERIOD_S)
        os._exit(1)

    threading.Thread(target=watch, name="driver-watchdog", daemon=True).start()
