"""Leaderboards rendered from result rows: seed statistics, summary columns, ordering, Markdown."""
from __future__ import annotations

import json

import pytest

from benchmark.leaderboard import build_leaderboards, write_leaderboard


def _row(method: str, countermeasure: str, seed: int, acc: float, status: str = "ok") -> dict:
    return {"cell_id": f"{method}/{countermeasure}/{seed}", "status": status, "dataset": "cifar10", "preset": "smoke",
            "model": "tinycnn", "method": method, "countermeasure": countermeasure, "seed": seed, "final_acc": acc}


def test_seed_mean_std_worst_and_mean_in_registry_order():
    rows = [_row("ops", "grayscale", 0, 0.2), _row("ops", "grayscale", 1, 0.4), _row("ops", "none", 0, 0.1),
            _row("ops", "none", 1, 0.1), _row("clean", "none", 0, 0.6), _row("clean", "grayscale", 0, 0.5),
            _row("ops", "jpeg10", 0, 0.9, status="failed")]
    (board,) = build_leaderboards(rows)
    assert list(board.mean.index) == ["clean", "ops"]
    assert list(board.mean.columns) == ["none", "grayscale", "worst", "mean"]
    assert board.mean.loc["ops", "grayscale"] == pytest.approx(30.0)
    assert board.std.loc["ops", "grayscale"] == pytest.approx(10.0)
    assert board.mean.loc["ops", "worst"] == pytest.approx(30.0) and board.mean.loc["ops", "mean"] == pytest.approx(20.0)
    assert board.seeds.loc["ops", "none"] == 2 and board.seeds.loc["clean", "none"] == 1


def test_markdown_shows_the_spread_only_when_there_is_more_than_one_seed(tmp_path):
    for seeds, expected in (([0], False), ([0, 1], True)):
        run = tmp_path / f"run{len(seeds)}"
        run.mkdir()
        rows = [_row("ops", "none", s, 0.1 + 0.1 * s) for s in seeds]
        (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        write_leaderboard([run], run)
        md = (run / "leaderboard.md").read_text()
        assert ("Standard deviation over seeds" in md) is expected
        assert f"{len(seeds)} seed" in md


def test_published_rows_render_back_to_the_same_table(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [_row("ops", "none", 0, 0.1), _row("ops", "none", 1, 0.3), _row("clean", "none", 0, 0.6),
            _row("ops", "grayscale", 0, 0.9, status="failed"), _row("ops", "none", 0, 0.2)]  # a rerun replaces 0.1
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "published"
    written = write_leaderboard([run], out, name="cifar10-smoke", with_rows=True)
    assert {p.name for p in written} == {"cifar10-smoke.csv", "cifar10-smoke_std.csv", "cifar10-smoke.md",
                                         "cifar10-smoke.png", "cifar10-smoke.seed0.jsonl", "cifar10-smoke.seed1.jsonl"}
    seed0 = [json.loads(line) for line in (out / "cifar10-smoke.seed0.jsonl").read_text().splitlines()]
    assert [(r["method"], r["final_acc"]) for r in seed0] == [("clean", 0.6), ("ops", 0.2)]
    republished = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]
    (again,) = build_leaderboards(republished)
    (board,) = build_leaderboards(rows)
    assert again.mean.equals(board.mean)
