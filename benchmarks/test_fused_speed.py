"""Fused victims vs the same victims trained one after the other, run with
`python -m pytest benchmarks/test_fused_speed.py --benchmark-only -s`.

K = 4 cells (`none`, seeds 0-3) of one epoch of the smoke training set (1,000 images, 15 steps), each evaluated
on the smoke test set, on one CPU thread: `train_victims_fused` once against four `train_victim` calls. The
ratio is sequential time over fused time (above 1: fusing is faster), in wall time and in CPU time (on a
shared machine the wall time of the same run moves by 2×, the CPU time on one thread much less). It also
reports how far the fused models ended from the sequential ones. No target: it is a measurement for
docs/performance.md#fused-victims."""
from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from benchmark.data import load_splits
from benchmark.presets import PRESETS
from benchmark.registry import countermeasures
from benchmark.tools.fused import FusedJob, train_victims_fused
from benchmark.training import train_victim

K = 4
ROUNDS = 2
CPU = torch.device("cpu")


@pytest.mark.parametrize("victim", ["tinycnn", "fastcnn"])
def test_fused_vs_sequential_victims(benchmark, data_root, one_thread, victim):
    train, test = load_splits("cifar10", data_root, "smoke")
    preset = dataclasses.replace(PRESETS["smoke"], model=victim, epochs=1)
    jobs = [FusedJob(train.images, train.labels, countermeasures.get("none")(), seed) for seed in range(K)]

    def timed(run):
        wall, cpu = time.perf_counter(), time.process_time()
        out = run()
        return out, time.perf_counter() - wall, time.process_time() - cpu

    fused_times: list[tuple[float, float]] = []
    sequential_times: list[tuple[float, float]] = []
    last: dict[str, list] = {}

    def one_round() -> None:
        last["fused"], *t = timed(lambda: train_victims_fused(jobs, preset, CPU, test.images, test.labels, 10))
        fused_times.append(tuple(t))
        last["sequential"], *t = timed(lambda: [
            train_victim(j.train_images, j.train_labels, test.images, test.labels, 10, preset, j.countermeasure,
                         j.seed, CPU) for j in jobs])
        sequential_times.append(tuple(t))

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    fused_wall, fused_cpu = (min(t[i] for t in fused_times) for i in (0, 1))
    seq_wall, seq_cpu = (min(t[i] for t in sequential_times) for i in (0, 1))
    diff = max(
        (a.model.state_dict()[k].double() - b.model.state_dict()[k].double()).abs().max().item()
        for a, b in zip(last["fused"], last["sequential"]) for k in b.model.state_dict()
    )
    acc = max(abs(a.final_acc - b.final_acc) for a, b in zip(last["fused"], last["sequential"]))
    benchmark.extra_info.update(fused_wall_s=fused_wall, sequential_wall_s=seq_wall, fused_cpu_s=fused_cpu,
                                sequential_cpu_s=seq_cpu, wall_ratio=seq_wall / fused_wall,
                                cpu_ratio=seq_cpu / fused_cpu, max_abs_state_diff=diff, max_final_acc_diff=acc)
    print(f"\n{victim}, K={K}, 1 smoke epoch, 1 thread (best of {ROUNDS}): fused {fused_wall:.1f} s wall / "
          f"{fused_cpu:.1f} s CPU, sequential {seq_wall:.1f} s / {seq_cpu:.1f} s; sequential/fused "
          f"{seq_wall / fused_wall:.2f}× wall, {seq_cpu / fused_cpu:.2f}× CPU; fused vs sequential: "
          f"max |Δ state| {diff:.2e}, max |Δ final acc| {acc:.3f}")
    assert len(last["fused"]) == K
