"""Progress of a grid: one ETA from the start, plain lines when the output is not a terminal."""
from __future__ import annotations

import io
import os
import time

import pytest

from benchmark.cli import main
from benchmark.progress import GridProgress, clock


def test_clock():
    assert clock(59.4) == "0:59" and clock(61) == "1:01" and clock(3 * 3600 + 62) == "3:01:02" and clock(-3) == "0:00"


def test_the_estimate_counts_down_and_follows_the_measured_pace():
    out = io.StringIO()
    meter = GridProgress(artifact_s=100.0, cell_s=40.0, artifacts=1, cells=4, stream=out)
    assert meter.estimate_s() == pytest.approx(140.0)
    time.sleep(0.2)
    meter.advance("artifact", 100.0, "protected set em seed 0 generated")  # ~0.2 s where 100 s were estimated
    assert meter.estimate_s() == pytest.approx(40.0 * 0.002, rel=0.5)
    time.sleep(0.2)
    meter.advance("cell", 10.0, "a: 10.0%")  # the rest goes at the pace of all that finished: 0.4 s for 110 s
    assert meter.estimate_s() == pytest.approx(30.0 * 0.4 / 110, rel=0.5)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[ 71%] artifact 1/1 protected set em seed 0 generated")
    assert "cells 1/4" in lines[1] and "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_run_prints_its_plan_then_one_line_per_item_when_not_on_a_terminal(tmp_path, data_root, capsys):
    assert main(["run", "--methods", "ops", "--countermeasures", "none,grayscale", "--out", str(tmp_path / "run"),
                 "--preset", "smoke", "--cache-dir", str(tmp_path / "cache"), "--data-root", data_root,
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    err, lines = captured.err, captured.err.splitlines()
    assert lines[0].startswith("preset smoke: ")
    assert lines[1] == ("4 cells: 4 to run, 0 already finished; 2 protected set(s) (0 cached), "
                        "0 countermeasure(s) to prepare")
    assert lines[2].startswith("estimated time: about ") and "tinycnn" in lines[2]
    assert "the numbers test the plumbing only" in lines[3]
    hint = f"each task computes on one thread: --jobs {os.cpu_count()} would use all {os.cpu_count()} cores"
    assert lines[4].startswith(hint) == ((os.cpu_count() or 1) > 1)  # at --jobs 1, a CPU task has one thread
    assert sum(" artifact " in line for line in lines) == 2 and sum(" cell " in line for line in lines) == 4
    assert "\r" not in err and "\x1b" not in err  # no bar escape codes in a log file
    assert "these numbers test the plumbing only" in captured.out  # the closing summary says it too
