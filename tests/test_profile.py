"""`profile`: every stage timed at smoke, the projection the sum of its parts, the cache only read, bad names refused."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from benchmark.cli import main
from benchmark.engine.config import GridConfig
from benchmark.engine.local import CPU_THREADS
from benchmark.engine.recipe import protected_set
from benchmark.plugins import Context, Countermeasure
from benchmark.registry import countermeasures
from benchmark.tools.profile import (
    CountermeasureCost,
    EvaluationCost,
    Profile,
    Timed,
    schedule_epoch,
)


@dataclass
class Fitted(Countermeasure):
    """A countermeasure whose `prepare` fits a (tiny) shared model, as `diffusion`'s DDPM."""

    family = "purification"

    def prepare(self, ctx: Context) -> None:
        ctx.artifact(self, "fitted", {"size": 1}, lambda: ({"weight": torch.zeros(1)}, {}))


def _files(root) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_profile_times_every_stage_projects_their_sum_and_only_reads_the_cache(tmp_path, data_root, temp_plugin,
                                                                               capsys):
    temp_plugin(countermeasures, "fitted", Fitted)
    cache = tmp_path / "cache"
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(cache), device="cpu")
    protected_set(config, config.method("ops"), 0)
    before = _files(cache)
    out = tmp_path / "profile.json"
    assert main(["profile", "--preset", "smoke", "--methods", "ops,lsp", "--countermeasures",
                 "none,grayscale,ueraser,fitted", "--epochs", "1", "--device", "cpu", "--data-root", data_root,
                 "--use-cache", "--cache-dir", str(cache), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert _files(cache) == before  # read, never written
    rows = [line.split() for line in text.splitlines()]
    assert [r[1] for r in rows if r[:1] == ["generate"]] == ["ops", "lsp"]
    assert [r[0] for r in rows if r[:1] in (["none"], ["grayscale"], ["ueraser"], ["fitted"])] == [
        "none", "grayscale", "ueraser", "fitted"]
    assert "projected grid, one seed, --jobs 1: 2 methods × 4 countermeasures = 8 cells" in text

    data = json.loads(out.read_text())
    assert data["generation"]["ops"]["source"] == "recorded" and data["generation"]["lsp"]["source"] == "measured"
    assert data["prepare"]["fitted"]["source"] == "measured" and list(data["prepare"]) == ["fitted"]
    measured = [data["generation"]["lsp"], data["surrogate"]["tinycnn"], data["prepare"]["fitted"]]
    assert all(t["seconds"] > 0 and t["source"] == "measured" for t in measured)
    cms = data["countermeasures"]
    assert cms["grayscale"]["preprocess_s"] > 0 and cms["none"]["preprocess_s"] == 0
    assert all(c["epoch_s"] > 0 for c in cms.values())
    ev = data["evaluation"]
    assert ev["test_s"] > 0 and ev["train_s"] > 0 and ev["evaluations"] == 4  # smoke: 4 epochs, evaluated after each
    assert ev["cell_s"] == pytest.approx(4 * ev["test_s"] + ev["train_s"])
    for c in cms.values():
        assert c["cell_s"] == pytest.approx(c["preprocess_s"] + data["epochs"] * c["epoch_s"] + ev["cell_s"])
    p = data["projection"]
    assert p["cells"] == 8 and data["threads"] == CPU_THREADS  # as every CPU task of a grid
    assert p["generation_s"] == pytest.approx(sum(t["seconds"] for t in data["generation"].values()))
    assert p["surrogate_s"] == pytest.approx(data["surrogate"]["tinycnn"]["seconds"])  # counted: ops came cached
    assert p["prepare_s"] == pytest.approx(data["prepare"]["fitted"]["seconds"])
    assert p["cells_s"] == pytest.approx(2 * sum(c["cell_s"] for c in cms.values()))
    assert p["total_s"] == pytest.approx(p["generation_s"] + p["surrogate_s"] + p["prepare_s"] + p["cells_s"])


def test_bad_names_and_flags_fail_before_any_work(data_root, capsys):
    base = ["profile", "--preset", "smoke", "--device", "cpu", "--data-root", data_root]
    assert main([*base, "--methods", "ops,nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'nosuch'; valid methods: clean, " in err and "profile:" not in err
    assert main([*base, "--methods", "ops", "--countermeasures", "none,nosuch"]) == 2
    assert "unknown countermeasure 'nosuch'; valid countermeasures: none, " in capsys.readouterr().err
    assert main([*base, "--methods", "ops", "--cache-dir", "/nowhere"]) == 2
    assert "--cache-dir is only read with --use-cache" in capsys.readouterr().err
    assert main([*base, "--methods", "ops", "--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err


def test_a_short_training_sweeps_the_whole_schedule():
    assert [schedule_epoch(i, 5, 1, 10) for i in range(5)] == [0, 2, 4, 6, 8]
    assert [schedule_epoch(i, 2, 2, 4) for i in range(4)] == [0, 1, 2, 3]
    steps = [schedule_epoch(i, 100, 1, 10) for i in range(100)]
    assert sum(e < 3 for e in steps) == 30  # UEraser's repeat epochs at quick (the first 3 of 10) get their 30 %


def _profile(sets: dict[str, float], cells: dict[str, float], prepare: dict[str, float]) -> Profile:
    """A profile whose cells last `cells[cm]` seconds (all pre-processing: 1 epoch of 0 s, no evaluation)."""
    profile = Profile("quick", "cifar10", "cpu", "cpu", 1, 1, 1, list(sets), next(iter(sets)), "temporary")
    profile.generation = {m: Timed(s) for m, s in sets.items()}
    profile.prepare = {c: Timed(s) for c, s in prepare.items()}
    profile.countermeasures = {c: CountermeasureCost(c, "none", [], s, 0.0, 1) for c, s in cells.items()}
    profile.evaluation = EvaluationCost(0.0, 0.0, 0)
    return profile


def test_the_wall_time_at_jobs_n_follows_the_schedulers_order():
    profile = _profile({"long": 10.0, "short": 2.0}, {"a": 3.0, "b": 1.0}, {"b": 4.0})
    assert profile.grid_wall_s(1) == profile.projection()["total_s"] == 24.0
    # Two workers: long 0-10 | prepare b 0-4, short 4-6, short×a 6-9, short×b 9-10; long×a 10-13, long×b 10-11.
    assert profile.grid_wall_s(2) == 13.0
    # Enough workers: the longest chain, the long set then its longest cell.
    assert profile.grid_wall_s(8) == 13.0
    assert _profile({"m": 1.0}, {"a": 5.0, "b": 5.0, "c": 5.0}, {}).grid_wall_s(2) == 11.0
