"""Efficacy at the quick preset: OPS and LSP (seeds 0 and 1), AR, CUDA and REM (a shortened schedule; seed 0) lower
clean test accuracy against clean training. The margins are below what the runs show (docs/results.md) to absorb
seed noise."""
from __future__ import annotations

import pytest

from benchmark.engine.config import GridConfig
from benchmark.engine.grid import run_grid
from benchmark.store.rows import read_rows

pytestmark = pytest.mark.slow  # in the default run; `-m "not slow"` leaves it out

SEEDS = (0, 1)
MARGINS = {"ops": 20.0, "lsp": 5.0, "ar": 25.0, "cuda": 15.0, "rem": 10.0}  # required drop in points below clean/none
ONE_SEED = ("ar", "cuda", "rem")  # seed 0 only, to keep the default run short (seeds 0/1 measured: ar 51/45, cuda 35/31)
# REM's quick schedule (400 crafting steps) takes about 20 min; 40 steps keep the test short and still protect
# (seed 0: 46.0 % against clean 65.6 %; the full schedule: 42.0 %).
METHOD_ARGS = {"rem": {"train_steps": "40"}}


@pytest.fixture(scope="module")
def accuracies(data_root, tmp_path_factory) -> dict[tuple[str, int], float]:
    """The nine quick cells, two at a time as `run --jobs 2` runs them; printed (`pytest -s`) with their margins."""
    config = GridConfig(preset="quick", data_root=data_root, cache_dir=str(tmp_path_factory.mktemp("cache")), device="cpu",
                        method_args=METHOD_ARGS)
    out = tmp_path_factory.mktemp("efficacy")
    two_seeds = ["clean", *(m for m in MARGINS if m not in ONE_SEED)]
    summary = run_grid(two_seeds, ["none"], list(SEEDS), out, config, jobs=2, show_progress=False)
    assert summary.failed == 0
    summary = run_grid(["clean", *ONE_SEED], ["none"], [0], out, config, jobs=2, show_progress=False)
    assert summary.failed == 0
    rows = [r for r in read_rows([out]) if r["status"] == "ok"]
    accs = {(r["method"], r["seed"]): 100 * r["final_acc"] for r in rows}
    for (method, seed), acc in sorted(accs.items()):
        drop = accs["clean", seed] - acc
        print(f"quick {method:5s} seed {seed}: {acc:.1f}%" + ("" if method == "clean" else
              f", {drop:.1f} points below clean (required: {MARGINS[method]:g})"))
    return accs


def test_quick_clean_reaches_55_percent(accuracies):
    assert all(accuracies["clean", s] >= 55 for s in SEEDS), accuracies


@pytest.mark.parametrize("method", list(MARGINS))
def test_method_sits_below_clean_on_every_seed(accuracies, method):
    for seed in (0,) if method in ONE_SEED else SEEDS:
        drop = accuracies["clean", seed] - accuracies[method, seed]
        assert drop >= MARGINS[method], f"{method} seed {seed}: drop {drop:.1f} < {MARGINS[method]} ({accuracies})"
