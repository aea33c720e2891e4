"""benchmark.pool with real worker processes and real signals."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmark.pool import WorkerDied, run_parallel
from tests.pool_tasks import scripted, square_or_raise, write_pid_then_sleep

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, sends POSIX signals")

REPO = Path(__file__).resolve().parent.parent

# A driver process for the tests that kill or interrupt it: two workers each sleeping 60 s.
DRIVER = """
import signal, sys
from benchmark.pool import run_parallel
from tests.pool_tasks import write_pid_then_sleep
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
for _ in run_parallel(write_pid_then_sleep, [(f"{sys.argv[1]}/{i}", 60.0) for i in range(2)], jobs=2):
    pass
"""


def _alive(pid: int) -> bool:
    """Whether pid runs: a zombie has ended, whoever reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _eventually(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def started_pids():
    """Reads the pids that tasks wrote to files; kills any still running at teardown."""
    seen: list[int] = []

    def read(paths: list[Path]) -> list[int]:
        assert _eventually(lambda: all(p.exists() for p in paths), 60), "the tasks never started"
        pids = [int(p.read_text()) for p in paths]
        seen.extend(pids)
        return pids

    yield read
    for pid in seen:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _start_driver(tmp_path: Path) -> subprocess.Popen:
    with open(tmp_path / "driver.err", "wb") as err:
        return subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path)], cwd=REPO, stderr=err,
                                start_new_session=True)


def test_every_result_comes_back_and_a_raising_task_yields_its_exception():
    results = dict(run_parallel(square_or_raise, range(8), jobs=2))
    assert sorted(results) == list(range(8))
    assert {x: results[x] for x in (0, 1, 2, 5, 6, 7)} == {x: x * x for x in (0, 1, 2, 5, 6, 7)}
    assert isinstance(results[3], ValueError) and str(results[3]) == "three is not allowed"
    # An exception that cannot be unpickled comes back as a RuntimeError holding its text.
    assert type(results[4]) is RuntimeError and "NeedsTwoArgs: 4/2" in str(results[4])


def test_a_worker_killed_mid_task_loses_only_that_task_and_is_replaced(tmp_path):
    folder = str(tmp_path)
    # The first worker holds 'hold' until another worker runs a square, which only the second
    # worker's replacement can do: the second worker dies on 'die'.
    tasks = [("hold", 0, folder), ("die", 1, folder)] + [("square", x, folder) for x in range(2, 7)]
    results = list(run_parallel(scripted, tasks, jobs=2))

    assert sorted(task for task, _ in results) == sorted(tasks)
    died = [(task, out) for task, out in results if isinstance(out, BaseException)]
    assert [task for task, _ in died] == [tasks[1]]
    error = died[0][1]
    assert isinstance(error, WorkerDied)
    match = re.fullmatch(r"worker process (\d+) died with exit code -9 \(SIGKILL: killed, e\.g\. by the "
                         r"out-of-memory killer\) while running this task", str(error))
    assert match, str(error)

    done = {task: out for task, out in results if task != tasks[1]}
    assert all(out[1] == task[1] ** 2 for task, out in done.items())
    pids = {out[0] for out in done.values()}
    assert int(match[1]) not in pids
    assert len(pids) == 2  # the first worker and the replacement


def test_closing_the_generator_ends_busy_workers_at_once(tmp_path, started_pids):
    jobs = [(str(tmp_path / "quick"), 0.0), (str(tmp_path / "a"), 60.0), (str(tmp_path / "b"), 60.0)]
    results = run_parallel(write_pid_then_sleep, jobs, jobs=2)
    task, _ = next(results)
    assert task == jobs[0]
    pids = started_pids([tmp_path / "a", tmp_path / "b"])
    assert len(set(pids)) == 2

    for pid in pids:  # workers ignore Ctrl-C: only the driver reacts to it
        os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert not list(tmp_path.glob("*.interrupted"))
    assert all(_alive(pid) for pid in pids)

    start = time.monotonic()
    results.close()
    assert time.monotonic() - start < 3
    assert not any(_alive(pid) for pid in pids)


def test_workers_die_with_a_sigkilled_driver(tmp_path, started_pids):
    driver = _start_driver(tmp_path)
    try:
        pids = started_pids([tmp_path / "0", tmp_path / "1"])
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(10)
        assert _eventually(lambda: not any(_alive(pid) for pid in pids), 5), "workers outlived their driver"
    finally:
        driver.kill()
        driver.wait()


def test_ctrl_c_stops_the_driver_and_its_workers_promptly(tmp_path, started_pids):
    driver = _start_driver(tmp_path)
    try:
        pids = started_pids([tmp_path / "0", tmp_path / "1"])
        start = time.monotonic()
        os.killpg(driver.pid, signal.SIGINT)  # as Ctrl-C does: the driver's whole process group
        driver.wait(10)
        assert time.monotonic() - start < 5
        assert driver.returncode == -signal.SIGINT
        assert "KeyboardInterrupt" in (tmp_path / "driver.err").read_text()
        assert not any(_alive(pid) for pid in pids)
        assert not list(tmp_path.glob("*.interrupted")), "a worker reacted to Ctrl-C"
    finally:
        driver.kill()
        driver.wait()
