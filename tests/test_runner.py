"""The grid end to end at the smoke preset: outputs, resume, failures, errors, interruption."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest

import benchmark.runner as runner
from benchmark.cli import main
from benchmark.plugins import Countermeasure
from benchmark.registry import countermeasures


@pytest.fixture
def argv(tmp_path, data_root):
    def make(*extra: str) -> list[str]:
        return ["run", "--preset", "smoke", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                "--data-root", data_root, "--device", "cpu", "--no-progress", *extra]
    return make


def _rows(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]


def test_smoke_grid_of_every_countermeasure_end_to_end_then_resume_trains_nothing(tmp_path, argv, monkeypatch):
    defenses = countermeasures.names()
    assert len(defenses) == 19
    assert main(argv("--methods", "ops,lsp", "--defenses", "all")) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 3 * 19 and all(r["status"] == "ok" for r in rows)
    assert {(r["method"], r["countermeasure"]) for r in rows} == {(m, d) for m in ("clean", "ops", "lsp") for d in defenses}
    row = next(r for r in rows if r["method"] == "lsp")
    assert row["perturbation"]["l2_max"] <= 1.3044 and row["preset_config"]["model"] == "tinycnn"
    assert 0 <= row["final_acc"] <= row["peak_acc"] <= 1 and row["seconds"]["train"] > 0
    assert sum(not r["generation_cached"] for r in rows) <= 3, "each protected set is generated once"

    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv", index_col="method")
    assert list(board.columns) == [*defenses, "worst", "mean"]
    assert list(board.index) == ["clean", "ops", "lsp"]
    assert (board["worst"] == board[defenses].max(axis=1)).all()
    md = (tmp_path / "run" / "leaderboard.md").read_text()
    assert "| ops " in md and "worst" in md
    assert (tmp_path / "run" / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"

    calls = []
    monkeypatch.setattr(runner, "train_victim", lambda *a, **k: calls.append(a))
    assert main(argv("--methods", "ops,lsp", "--defenses", "all")) == 0
    assert calls == [] and len(_rows(tmp_path)) == 3 * 19


def test_a_failing_cell_becomes_a_failed_row_and_the_grid_goes_on(tmp_path, argv, temp_plugin):
    @dataclass
    class Boom(Countermeasure):
        """Always fails."""

        def preprocess(self, images, labels, ctx):
            raise RuntimeError("kaboom")

    temp_plugin(countermeasures, "boom", Boom)
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "boom,none")) == 1
    rows = {r["countermeasure"]: r for r in _rows(tmp_path)}
    assert rows["boom"]["status"] == "failed" and rows["boom"]["error"] == "RuntimeError: kaboom"
    assert rows["none"]["status"] == "ok"


def test_unknown_names_fail_with_the_valid_names(argv, capsys):
    assert main(argv("--methods", "nope")) == 2
    assert "unknown method 'nope'; valid methods: clean, dh, dh-8, em, em-classwise, tap, ops, lsp" in capsys.readouterr().err
    assert main(argv("--defenses", "none,jpeg")) == 2
    assert "valid countermeasures: none, cutout, cutmix, mixup, autoaugment" in capsys.readouterr().err
    assert main(argv("--defense-args", "jpeg10.qual=3")) == 2
    assert "no parameter 'qual'" in capsys.readouterr().err


def test_interrupt_keeps_finished_cells_and_prints_the_resume_command(tmp_path, argv, temp_plugin, capsys):
    @dataclass
    class Interrupt(Countermeasure):
        """Simulates Ctrl-C."""

        def preprocess(self, images, labels, ctx):
            raise KeyboardInterrupt

    temp_plugin(countermeasures, "zz-interrupt", Interrupt)
    args = argv("--methods", "ops", "--no-clean", "--defenses", "none,zz-interrupt")
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "Resume with: python -m benchmark run" in err and "zz-interrupt" in err
    assert [r["countermeasure"] for r in _rows(tmp_path)] == ["none"]


def test_parallel_jobs_match_the_grid(tmp_path, argv):
    assert main(argv("--methods", "ops", "--defenses", "none,grayscale", "--jobs", "2")) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
