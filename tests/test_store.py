"""The results store survives torn and failed writes and garbage lines; a run folder has one holder at a time."""
from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.store.rows import (
    RESULTS_FILE,
    RunFolderBusy,
    RunLock,
    append_row,
    finished_ids,
    read_rows,
)

REPO = Path(__file__).resolve().parents[1]

# Tries to take the lock of the folder in argv[1] once and says what happened.
TRY_LOCK = """
import sys
from benchmark.store.rows import RunFolderBusy, RunLock
try:
    with RunLock(sys.argv[1]):
        print("took")
except RunFolderBusy as e:
    print("busy:", e)
"""

# Takes the lock of the folder in argv[1], says so, and holds it until killed.
HOLD_LOCK = """
import sys, time
from benchmark.store.rows import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def row(cell_id: str, **extra) -> dict:
    return {"cell_id": cell_id, "status": "ok", **extra}


def line(r: dict) -> bytes:
    return (json.dumps(r) + "\n").encode()


def try_lock_elsewhere(run_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(run_dir)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_append_after_torn_line_starts_a_new_line(tmp_path: Path):
    path = tmp_path / RESULTS_FILE
    path.write_bytes(line(row("a")) + b'{"cell_id": "b", "stat')
    append_row(tmp_path, row("c"))
    with pytest.warns(UserWarning) as caught:
        rows = read_rows([tmp_path])
    assert [r["cell_id"] for r in rows] == ["a", "c"]
    assert [str(w.message) for w in caught] == [f"{path}:2: skipped: not valid JSON (interrupted write?)"]
    with pytest.warns(UserWarning):
        assert finished_ids(tmp_path) == {"a", "c"}


def test_short_writes_still_produce_a_whole_line(tmp_path: Path, monkeypatch):
    real_write = os.write
    calls = []

    def short_write(fd: int, data) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:5]))

    monkeypatch.setattr("benchmark.store.rows.os.write", short_write)
    append_row(tmp_path, row("a", final_acc=0.5))
    append_row(tmp_path, row("b"))
    monkeypatch.undo()
    assert len(calls) > 2
    assert read_rows([tmp_path]) == [row("a", final_acc=0.5), row("b")]


def test_failed_write_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch):
    append_row(tmp_path, row("a"))
    before = (tmp_path / RESULTS_FILE).read_bytes()
    real_write = os.write

    def write_then_fail(fd: int, data) -> int:
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("benchmark.store.rows.os.write", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        append_row(tmp_path, row("b"))
    monkeypatch.undo()
    assert (tmp_path / RESULTS_FILE).read_bytes() == before
    append_row(tmp_path, row("c"))
    assert [r["cell_id"] for r in read_rows([tmp_path])] == ["a", "c"]


def test_garbage_lines_are_skipped_with_file_and_line(tmp_path: Path):
    path = tmp_path / RESULTS_FILE
    assert finished_ids(tmp_path) == set()
    with pytest.raises(FileNotFoundError, match="no results at"):
        read_rows([tmp_path])
    garbage = [b"42\n", b"\xff\n", b"[1,2]\n", b'{"x": 1}\n', b'{"cell_id": 5, "status": "ok"}\n']
    path.write_bytes(line(row("a")) + b"".join(garbage) + b"\n" + line(row("b", status="failed")))
    with pytest.warns(UserWarning) as caught:
        rows = read_rows([path])
    assert [r["cell_id"] for r in rows] == ["a", "b"]
    assert [str(w.message) for w in caught] == [
        f"{path}:2: skipped: not a JSON object",
        f"{path}:3: skipped: not valid UTF-8",
        f"{path}:4: skipped: not a JSON object",
        f"{path}:5: skipped: no string cell_id",
        f"{path}:6: skipped: no string cell_id",
    ]
    with pytest.warns(UserWarning) as caught:
        assert finished_ids(tmp_path) == {"a"}
    assert len(caught) == len(garbage)


def test_non_finite_values_become_null_and_are_listed(tmp_path: Path):
    given = row("a", final_acc=math.nan, history=[(0, 1.0), (1, math.inf)], notes={"loss": -math.inf, "ok": 2.0})
    append_row(tmp_path, given)
    append_row(tmp_path, row("b", final_acc=0.25))
    raw = (tmp_path / RESULTS_FILE).read_bytes()
    assert b"NaN" not in raw and b"Infinity" not in raw
    first, second = read_rows([tmp_path])
    assert first["final_acc"] is None
    assert first["history"] == [[0, 1.0], [1, None]]
    assert first["notes"] == {"loss": None, "ok": 2.0}
    assert first["non_finite"] == ["final_acc", "history.1.1", "notes.loss"]
    assert "non_finite" not in second
    assert "non_finite" not in given  # the caller's row is not modified


def test_lock_held_here_refuses_another_process_until_released(tmp_path: Path):
    with RunLock(tmp_path):
        out = try_lock_elsewhere(tmp_path)
        assert out.startswith(f"busy: run folder {tmp_path} is in use by process {os.getpid()} (since ")
        assert out.endswith("; wait for it to finish or pass another --out")
    assert try_lock_elsewhere(tmp_path) == "took"


def test_lock_of_a_killed_holder_is_free_again(tmp_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=rf"in use by process {holder.pid} \(since "):
            with RunLock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    with RunLock(tmp_path):
        pass


@pytest.mark.parametrize("content", [b"", b"\xffnot json", b"[1, 2]", b'{"pid": "x"}'])
def test_busy_message_tolerates_an_empty_or_garbled_lock_file(tmp_path: Path, content: bytes):
    (tmp_path / ".lock").write_bytes(content)
    # A second open file description of the same file conflicts with flock even within one process.
    with open(tmp_path / ".lock", "rb") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunFolderBusy, match=f"run folder {tmp_path} is in use by another process; wait"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_bytes())["pid"] == os.getpid()


PUBLISHED_ROWS = REPO / "results" / "leaderboards" / "cifar10-quick.seed0.jsonl"


def test_every_published_row_reads_back_as_a_row_unchanged():
    from benchmark.store.row import Row

    lines = [json.loads(line) for line in PUBLISHED_ROWS.read_text().splitlines() if line.strip()]
    assert len(lines) > 100
    for data in lines:
        read = Row.from_dict(data).as_dict()
        assert {k: read[k] for k in data} == data


@pytest.mark.parametrize(("change", "message"), [
    ({"seed": "0"}, "has seed '0', expected int"),
    ({"seed": True}, "has seed True, expected int"),
    ({"final_acc": "0.5"}, "has final_acc '0.5', expected float | None"),
    ({"method_id": None}, "lacks method_id"),
    ({"status": "running"}, "has status 'running' (valid: ok, failed)"),
    ({"poison_ratio": 0}, "has poison_ratio 0, expected a fraction"),
    ({"schema": 9}, "has unknown schema 9 (known: 1, 2)"),
])
def test_a_row_that_breaks_its_schema_is_refused_naming_the_field(change, message):
    from benchmark.store.row import Row, RowError

    data = json.loads(PUBLISHED_ROWS.read_text().splitlines()[0])
    with pytest.raises(RowError, match=re.escape(message)) as caught:
        Row.from_dict(data | change)
    assert data["cell_id"] in str(caught.value)


def test_a_schema1_row_needs_no_ids_and_unknown_keys_are_left_out():
    from benchmark.store.row import Row

    old = {"cell_id": "c", "status": "ok", "dataset": "cifar10", "preset": "quick", "model": "fastcnn", "seed": 0,
           "method": "ops", "countermeasure": "none", "final_acc": 0.5, "non_finite": ["peak_acc"]}
    row = Row.from_dict(old)
    assert row.method_id is None and row.final_acc == 0.5 and "non_finite" not in row.as_dict()
