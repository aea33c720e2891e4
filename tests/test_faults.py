"""What real machines do to a grid: a worker killed mid-cell, Ctrl-C, the main process killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli import main

pytestmark = pytest.mark.slow  # in the default run; `-m "not slow"` leaves it out

# A countermeasure whose pre-processing records its process id, then kills its process (as the
# out-of-memory killer would) or sleeps (a long cell), depending on its `mode`.
FAULTY = '''
import os, signal, time
from dataclasses import dataclass
from pathlib import Path
from benchmark.plugins import Countermeasure
from benchmark.registry import register_countermeasure

@register_countermeasure("zz-faulty")
@dataclass
class Faulty(Countermeasure):
    """Kills or stalls its process."""

    mode: str = "kill"

    def preprocess(self, images, labels, ctx):
        Path(os.environ["FAULTY_PIDS"], str(os.getpid())).touch()
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(120)
        return images
'''


@pytest.fixture
def faulty(installed_plugin, tmp_path, monkeypatch) -> Path:
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("FAULTY_PIDS", str(pids))
    installed_plugin("faulty_countermeasure", FAULTY, "uebench.countermeasures")
    return pids


def _args(tmp_path: Path, data_root: str, *extra: str) -> list[str]:
    return ["run", "--preset", "smoke", "--methods", "ops", "--no-clean", "--out", str(tmp_path / "run"),
            "--cache-dir", str(tmp_path / "cache"), "--data-root", data_root, "--device", "cpu", "--no-progress", *extra]


def _rows(tmp_path: Path) -> list[dict]:
    path = tmp_path / "run" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_killed_worker_costs_only_its_cell(tmp_path, data_root, faulty):
    assert main(_args(tmp_path, data_root, "--defenses", "none,zz-faulty,grayscale", "--jobs", "2")) == 1
    rows = {r["countermeasure"]: r for r in _rows(tmp_path)}
    assert rows["none"]["status"] == rows["grayscale"]["status"] == "ok"
    killed = rows["zz-faulty"]
    assert killed["status"] == "failed" and killed["error"].startswith("WorkerDied: worker process")
    assert "SIGKILL" in killed["error"] and killed["countermeasure_params"] == {"mode": "kill"}
    assert killed["identity"]["countermeasure"]["distribution"] == {"name": "faulty_countermeasure", "version": "1.0"}
    # the resumed grid retries only the lost cell
    assert main(_args(tmp_path, data_root, "--defenses", "none,zz-faulty,grayscale", "--jobs", "2")) == 1
    assert [r["countermeasure"] for r in _rows(tmp_path)][3:] == ["zz-faulty"]


def _interruptible() -> None:
    """Give the child Ctrl-C as a terminal would, even when pytest itself was started with SIGINT ignored
    (a background job or nohup), which a child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_stalled_grid(tmp_path: Path, data_root: str, pids: Path) -> subprocess.Popen:
    """A CLI grid in its own process group whose `none` cell finishes while a worker stalls in zz-faulty."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *_args(tmp_path, data_root, "--defenses", "none,zz-faulty", "--jobs", "2",
                                                   "--defense-args", "zz-faulty.mode=sleep")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_interruptible,
    )
    stalled = _wait(lambda: any(pids.iterdir()) and len(_rows(tmp_path)) == 1, 120)
    if not stalled:
        proc.kill()
        pytest.fail(f"the grid did not reach its stalled cell: {proc.communicate()[1][-2000:]}")
    return proc


def test_ctrl_c_with_jobs_stops_within_seconds_and_keeps_finished_rows(tmp_path, data_root, faulty):
    proc = _start_stalled_grid(tmp_path, data_root, faulty)
    start = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 10 and proc.returncode == 130, err[-2000:]
    assert "Resume with: python -m benchmark run" in err
    (worker,) = (int(p.name) for p in faulty.iterdir())
    assert _wait(lambda: not _alive(worker), 5)
    assert [r["countermeasure"] for r in _rows(tmp_path)] == ["none"]


def test_killing_the_main_process_takes_its_workers_with_it(tmp_path, data_root, faulty):
    proc = _start_stalled_grid(tmp_path, data_root, faulty)
    (worker,) = (int(p.name) for p in faulty.iterdir())
    proc.kill()
    proc.communicate()
    assert _wait(lambda: not _alive(worker), 10), "the worker outlived the main process"
