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


def _simulate(pieces: list[tuple[str, str, float, float, str | None]], slots: int) -> list[tuple[float, str, float]]:
    """A grid run on `slots` workers: (name, kind, estimated s, true s, the set it waits for); first come, first
    served, a cell once its set has finished. Returns (finish time, name, true seconds) in finishing order."""
    waiting, running, done, events, now = list(pieces), [], set(), [], 0.0
    while waiting or running:
        for piece in [p for p in waiting if p[4] is None or p[4] in done]:
            if len(running) == slots:
                break
            waiting.remove(piece)
            running.append((now + piece[3], piece))
        running.sort(key=lambda r: r[0])
        now, piece = running.pop(0)
        done.add(piece[0])
        events.append((now, piece[0], piece[3]))
    return events


def _estimates_over_truth(classed: bool, slots: int = 2) -> list[float]:
    """The estimate over the true time left after each finish of a scripted grid: 3 sets, then per set 10 standard
    and 2 adversarial-training cells, with cost hints off in both directions (sets 2.5× too slow, standard cells
    1.5× too fast, adversarial training 2.5× too fast); `classed`: each kind of piece in its own cost class."""
    pieces = [(f"set{s}", "artifact", 120.0 * 2.5, 120.0, None) for s in range(3)]
    for s in range(3):
        pieces += [(f"std{s}-{k}", "cell", 30.0 / 1.5, 30.0, f"set{s}") for k in range(10)]
        pieces += [(f"adv{s}-{k}", "cell", 200.0 / 2.5, 200.0, f"set{s}") for k in range(2)]
    cls = {p[0]: ("set:em" if p[1] == "artifact" else "cell:training/fastcnn" if p[0].startswith("adv")
                  else "cell:none/fastcnn") if classed else "all" for p in pieces}
    classes: dict[str, list] = {}
    for name, kind, estimate, _, _ in pieces:
        entry = classes.setdefault(cls[name], [kind, 0.0, 0])
        entry[1] += estimate / slots
        entry[2] += 1
    estimates = {p[0]: p[2] / slots for p in pieces}  # each piece's share of the wall time, as the plan spreads it
    events = _simulate(pieces, slots)
    makespan = events[-1][0]
    meter = GridProgress(sum(v for k, v in estimates.items() if k.startswith("set")),
                         sum(v for k, v in estimates.items() if not k.startswith("set")), 3, 36,
                         stream=io.StringIO(), classes={k: tuple(v) for k, v in classes.items()}, slots=slots)
    ratios = [meter.estimate_s() / makespan]
    for now, name, seconds in events:
        meter.advance("artifact" if name.startswith("set") else "cell", estimates[name], name, cls[name], seconds)
        if makespan - now > 1:  # the last pieces may finish together
            ratios.append(meter.estimate_s() / (makespan - now))
    assert meter.estimate_s() == 0.0
    return ratios


def test_the_estimate_stays_within_a_factor_of_the_truth_when_the_cost_hints_are_off():
    """Each cost class's measured pace corrects its own pieces: the estimate stays within a factor 2 of the time
    actually left at every step, where one pace for all the work strays by more than 3× once the sets are done."""
    ratios = _estimates_over_truth(classed=True)
    assert all(0.5 <= r <= 2.0 for r in ratios), [round(r, 2) for r in ratios]
    assert min(_estimates_over_truth(classed=False)) < 1 / 3
