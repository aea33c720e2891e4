"""Poisoning ratio as a grid axis: a class-balanced share is protected, generation happens once, the ratio
is part of the identity and of the leaderboard's grouping."""
from __future__ import annotations

import json

import pytest
import torch

from benchmark.cli import main
from benchmark.data import poison_mask
from benchmark.engine.cells import Cell
from benchmark.engine.config import GridConfig


def test_the_protected_share_is_class_balanced_and_fixed_per_ratio():
    labels = torch.arange(10).repeat_interleave(50)
    half = poison_mask(labels, 10, 0.5, seed=0)
    assert torch.bincount(labels[half], minlength=10).tolist() == [25] * 10
    assert torch.equal(half, poison_mask(labels, 10, 0.5, seed=0))
    assert not torch.equal(half, poison_mask(labels, 10, 0.5, seed=1))
    assert poison_mask(labels, 10, 1.0, seed=0).all() and poison_mask(labels, 10, 0.2, seed=0).sum() == 100
    with pytest.raises(ValueError, match="in \\(0, 1\\], got 1.5"):
        poison_mask(labels, 10, 1.5, seed=0)


def test_a_ratio_sweep_generates_once_and_renders_a_board_per_ratio(tmp_path, data_root):
    args = ["run", "--preset", "smoke", "--methods", "ops", "--defenses", "none,grayscale", "--poison-ratios",
            "0.5,1.0", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--data-root",
            data_root, "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    assert len(list((tmp_path / "cache" / "protected").glob("*.pt"))) == 2, "clean and ops, once each"
    half = [r for r in rows if r["poison_ratio"] == 0.5]
    assert len(half) == 4 and all(r["poisoned"] == 500 and "/ratio0.5/" in r["cell_id"] for r in half)
    assert all(r["identity"]["poison"]["ratio"] == 0.5 for r in half)

    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path / "cache"), device="cpu")
    full = next(r for r in rows if r["poison_ratio"] == 1.0 and r["method"] == "ops" and r["countermeasure"] == "none")
    assert full["cell_id"] == Cell("ops", "none", 0).resolve(config).cell_id, "ratio 1 keeps the identity of the full protocol"
    assert "poison" not in full["identity"] and full["poisoned"] == 1000

    out = tmp_path / "run"
    assert (out / "leaderboard-cifar10-smoke-tinycnn-ratio0.5.csv").exists()
    assert "50% protected" in (out / "leaderboard-cifar10-smoke-tinycnn-ratio0.5.md").read_text()
    assert (out / "leaderboard_ratios.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args) == 0  # resume: nothing left to run
    assert len((tmp_path / "run" / "results.jsonl").read_text().splitlines()) == 8


def test_a_bad_ratio_fails_before_any_work(tmp_path, data_root, capsys):
    assert main(["run", "--preset", "smoke", "--methods", "ops", "--poison-ratios", "0.5,1.5", "--out",
                 str(tmp_path / "run"), "--data-root", data_root, "--no-progress"]) == 2
    assert "--poison-ratios must be fractions in (0, 1]" in capsys.readouterr().err
