"""Generation time and peak memory per method at the smoke preset, each in its own process with a
fresh cache, against the `clean` row's process measured in the same run. Run with
`python -m pytest benchmarks/test_generation.py --benchmark-only -s`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.registry import methods

MAX_RSS_RATIO = 3.0  # a method may hold a crafting model and a copy of the data, not a zoo of them


# The child runs the CLI, then writes its own peak resident set size (KiB on Linux) to a file.
CHILD = ("import resource, sys; from benchmark.cli import main; code = main(sys.argv[2:]); "
         "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)); sys.exit(code)")


def _one_cell(method: str, root: Path, data_root: str) -> tuple[dict, float]:
    """Run `method` × none at smoke in a child process; its result row and its peak RSS in MiB."""
    out, rss_file = root / method, root / f"{method}.rss"
    cmd = [sys.executable, "-c", CHILD, str(rss_file), "run", "--methods", method, "--no-clean", "--defenses", "none",
           "--preset", "smoke", "--out", str(out), "--cache-dir", str(root / f"cache-{method}"),
           "--data-root", data_root, "--device", "cpu", "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    row = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    return row, int(rss_file.read_text()) / 1024


@pytest.fixture(scope="module")
def clean_reference(tmp_path_factory, data_root):
    return _one_cell("clean", tmp_path_factory.mktemp("gen"), data_root)


@pytest.mark.parametrize("name", [m for m in methods.names() if m != "clean"])
def test_generation_time_and_peak_memory(benchmark, clean_reference, tmp_path, data_root, name):
    clean_row, clean_rss = clean_reference
    row, rss = benchmark.pedantic(lambda: _one_cell(name, tmp_path, data_root), rounds=1, iterations=1)
    generate, train = row["seconds"]["generate"], clean_row["seconds"]["train"]
    benchmark.extra_info.update(generate_s=generate, clean_train_s=train, generate_vs_clean_train=generate / train,
                                peak_rss_mib=rss, clean_peak_rss_mib=clean_rss, rss_ratio=rss / clean_rss)
    print(f"\n{name}: generation {generate:.1f} s ({generate / train:.1f}x one smoke victim training of "
          f"{train:.1f} s); peak RSS {rss:.0f} MiB ({rss / clean_rss:.2f}x the clean cell's {clean_rss:.0f} MiB)")
    assert row["status"] == "ok" and rss / clean_rss < MAX_RSS_RATIO
