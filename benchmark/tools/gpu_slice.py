"""`slice iss`: the ISS table's slice of the grid in one prepared call of a lent GPU machine. The table's methods are
protected at full CIFAR-10 and trained under `none`, `grayscale` and `jpeg10` with the fast victim (`paper-fast`),
a few cells with the paper's ResNet-18 to measure how far the fast victim is from it, and every result comes back as
a handful of small files: the two grids' rows, the comparison with the reference table and a summary of the cost."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..engine.config import GridConfig
from ..engine.grid import run_grid
from ..identity import device_name, git_state
from ..report.compare import write_comparison

ISS_METHODS = ("em", "rem", "tap", "lsp", "ar", "ops")  # the ISS table's, with `clean`
ISS_COLUMNS = ("none", "grayscale", "jpeg10")
# Methods whose sets need no trained model: the paper preset's own sets (another key than the fast victim's) are
# made in seconds, so the ResNet-18 cells cost only their training.
REFERENCE_METHODS = ("ops", "lsp")
SUMMARY = "slice.json"


def _with_clean(names: tuple[str, ...]) -> list[str]:
    """The methods with `clean`, every grid's reference row, first."""
    return list(dict.fromkeys(["clean", *names]))


def _grid(names: list[str], columns: list[str], seed: int, out: Path, config: GridConfig, jobs: int) -> dict[str, Any]:
    """Run one grid into OUT and say how many cells it ran and how long it took."""
    start = time.perf_counter()
    summary = run_grid(names, columns, [seed], out, config, jobs)
    wall = time.perf_counter() - start
    return {"preset": config.preset, "cells": summary.ran, "skipped": summary.skipped, "failed": summary.failed,
            "wall_s": wall, "cells_per_minute": 60 * summary.ran / wall if summary.ran else None}


def iss_slice(out: str | os.PathLike, reference_csv: str | os.PathLike, *, fast_preset: str = "paper-fast",
              reference_preset: str = "paper", methods: tuple[str, ...] = ISS_METHODS,
              columns: tuple[str, ...] = ISS_COLUMNS, reference_methods: tuple[str, ...] = REFERENCE_METHODS,
              seed: int = 0, jobs: int = 1, data_root: str | None = None, cache_dir: str | None = None,
              device: str = "auto", method_args: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """Run the slice, `clean` added to each grid, into OUT (OUT/fast, OUT/reference: ordinary resumable run folders),
    compare the fast grid with `reference_csv` (OUT/compare.md) and write OUT/slice.json; returns that summary."""
    out = Path(out)
    fast = GridConfig(preset=fast_preset, data_root=data_root, cache_dir=cache_dir, device=device,
                      method_args=method_args or {})
    reference = GridConfig(preset=reference_preset, data_root=data_root, cache_dir=cache_dir, device=device)
    result: dict[str, Any] = {"device": device_name(fast.torch_device), "git_commit": git_state()[0]}
    result["fast"] = _grid(_with_clean(methods), list(columns), seed, out / "fast", fast, jobs)
    result["reference"] = _grid(_with_clean(reference_methods), ["none"], seed, out / "reference", reference, jobs)
    (out / "compare.md").write_text(write_comparison([out / "fast"], reference_csv, resamples=200))
    (out / SUMMARY).write_text(json.dumps(result, indent=1) + "\n")
    return result
