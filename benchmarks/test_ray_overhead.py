"""What `--executor ray` costs on one machine: the smoke 3×3 grid (`ops,lsp` + clean × `none,grayscale,jpeg10`,
generation included) with a local Ray that the command starts and stops, against `--jobs 1` and `--jobs 2` in the
same run. Run with `python -m pytest benchmarks/test_ray_overhead.py --benchmark-only -s`."""
from __future__ import annotations

import time
from pathlib import Path

from benchmark.cli import main

GRID = ["--methods", "ops,lsp", "--defenses", "none,grayscale,jpeg10", "--preset", "smoke", "--device", "cpu",
        "--no-progress"]


def _grid(root: Path, data_root: str, name: str, *executor: str) -> float:
    """Wall seconds of the grid, in its own run folder and cache."""
    start = time.perf_counter()
    assert main(["run", *GRID, "--out", str(root / name), "--cache-dir", str(root / f"cache-{name}"),
                 "--data-root", data_root, *executor]) == 0
    return time.perf_counter() - start


def test_ray_overhead_on_the_smoke_grid(benchmark, data_root, tmp_path):
    one = _grid(tmp_path, data_root, "jobs1", "--jobs", "1")
    two = _grid(tmp_path, data_root, "jobs2", "--jobs", "2")
    on_ray = benchmark.pedantic(lambda: _grid(tmp_path, data_root, "ray", "--executor", "ray"), rounds=1, iterations=1)
    benchmark.extra_info.update(jobs1_s=one, jobs2_s=two, ray_s=on_ray, ray_vs_jobs1=on_ray / one,
                                ray_vs_jobs2=on_ray / two)
    print(f"\nsmoke 3×3 grid: --jobs 1 {one:.1f} s, --jobs 2 {two:.1f} s, --executor ray {on_ray:.1f} s "
          f"(Ray started and stopped included): {on_ray / one:.2f}× --jobs 1, {on_ray / two:.2f}× --jobs 2")
