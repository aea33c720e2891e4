"""The local executor's task graph: cells start once their own set is ready, the numbers do not depend on
--jobs, and an artifact that two processes ask for at once is made once."""
from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.engine.local import TaskQueue
from benchmark.pool import run_parallel

from .pool_tasks import make_once, square_or_raise

# A method whose generation takes a while and changes nothing (a zero perturbation is within any budget).
SLEEPY = '''
import time
from dataclasses import dataclass

from benchmark.plugins import Budget, Method
from benchmark.registry import register_method


@register_method("sleepy")
@dataclass
class Sleepy(Method):
    """The clean images, after a pause."""

    budget = Budget("linf", 8 / 255)
    seconds: float = 30.0

    def generate(self, images, labels, ctx):
        time.sleep(self.seconds)
        return images.clone()
'''


def _run(tmp_path: Path, data_root: str, name: str, *extra: str) -> list[dict]:
    out = tmp_path / name
    argv = ["run", "--preset", "smoke", "--out", str(out), "--cache-dir", str(tmp_path / f"cache-{name}"),
            "--data-root", data_root, "--device", "cpu", "--no-progress", *extra]
    assert main(argv) == 0
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_cells_of_a_ready_set_run_while_another_set_is_still_being_made(tmp_path, data_root, installed_plugin):
    installed_plugin("sleepy_method", SLEEPY, "uebench.methods")
    rows = _run(tmp_path, data_root, "run", "--methods", "sleepy,ops", "--no-clean",
                "--countermeasures", "none,grayscale", "--jobs", "2")
    assert [r["status"] for r in rows] == ["ok"] * 4
    ops = [r for r in rows if r["method"] == "ops"]
    sleepy = [r for r in rows if r["method"] == "sleepy"]
    assert all(r["seconds"]["generate"] >= 30 for r in sleepy)
    # Made first, one set after the other, `ops`' cells could only start once the 30-second set was done.
    assert max(r["finished"] for r in ops) <= min(r["started"] for r in sleepy)


@pytest.mark.slow
def test_jobs_1_and_jobs_2_make_the_same_sets_and_the_same_numbers(tmp_path, data_root):
    grid = ("--methods", "tap,ops", "--countermeasures", "none,grayscale")
    one = _run(tmp_path, data_root, "one", *grid, "--jobs", "1")
    two = _run(tmp_path, data_root, "two", *grid, "--jobs", "2")

    def numbers(rows: list[dict]) -> dict[str, tuple]:
        return {r["cell_id"]: (r["final_acc"], r["history"], r["train_acc"], r["threads"]) for r in rows}

    assert len(one) == 6 and numbers(one) == numbers(two)
    assert {r["threads"] for r in one + two} == {1}
    sets = {name: {p.stem: torch.load(p, weights_only=True)["images"] for p in (tmp_path / f"cache-{name}" / "protected").glob("*.pt")}
            for name in ("one", "two")}
    assert len(sets["one"]) == 3 and sets["one"].keys() == sets["two"].keys()
    assert all(torch.equal(sets["one"][k], sets["two"][k]) for k in sets["one"])  # tap's too: made in a worker


def test_the_queue_hands_out_a_seed_at_a_time_sets_first_then_the_longest_cells():
    queue = TaskQueue()
    for task, cost, first, seed in [("cell short", 1, False, 0), ("set cheap", 0.1, True, 0), ("cell long", 8, False, 0),
                                    ("set dear", 20, True, 0), ("cell middle", 2, False, 0), ("seed 1 set", 50, True, 1),
                                    ("seed 1 cell", 9, False, 1), ("prepare", 1, True, float("-inf"))]:
        queue.push(task, cost, first, seed)
    queue.appendleft(queue.popleft())  # a task that could not be handed out goes next
    assert [queue.popleft() for _ in range(len(queue))] == [
        "prepare", "set dear", "set cheap", "cell long", "cell middle", "cell short", "seed 1 set", "seed 1 cell"]


def test_tasks_queued_while_results_arrive_are_run():
    queue = deque([2])
    seen = []
    for task, result in run_parallel(square_or_raise, queue, jobs=2):
        seen.append((task, result))
        if task == 2:  # a result can release more work
            queue.extend([5, 6])
    assert sorted(seen) == [(2, 4), (5, 25), (6, 36)]


def test_an_artifact_asked_for_by_two_processes_at_once_is_made_once(tmp_path):
    results = [r for _, r in run_parallel(make_once, [(str(tmp_path), "a"), (str(tmp_path), "a")], jobs=2)]
    assert results == [3.0, 3.0]
    assert len((tmp_path / "made").read_text().split()) == 1
