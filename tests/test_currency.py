"""`python -m benchmark stale`: rows this checkout would compute under another cell id are listed with what
changed; current rows are not."""
from __future__ import annotations

import json

from benchmark.cli import main
from benchmark.registry import countermeasures, methods
from benchmark.tools.currency import render, superseded


def test_a_version_bump_supersedes_exactly_the_rows_it_made(tmp_path, data_root, monkeypatch, capsys):
    out = tmp_path / "run"
    assert main(["run", "--methods", "ops", "--countermeasures", "none,grayscale", "--preset", "smoke", "--out",
                 str(out), "--data-root", data_root, "--cache-dir", str(tmp_path / "cache"), "--device", "cpu",
                 "--no-progress", "--recompute"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and superseded(rows, data_root) == []
    assert main(["stale", str(out), "--data-root", data_root]) == 0
    assert "all 4 finished rows are current" in capsys.readouterr().out

    monkeypatch.setattr(methods.get("ops"), "version", "2")
    monkeypatch.setattr(countermeasures.get("grayscale"), "version", "5")
    found = superseded(rows, data_root)
    assert sorted((f["method"], f["countermeasure"]) for f in found) == [
        ("clean", "grayscale"), ("ops", "grayscale"), ("ops", "none")]  # clean × none is untouched
    by_cell = {(f["method"], f["countermeasure"]): f["differs"] for f in found}
    assert by_cell[("ops", "none")] == {"method.version": ("1", "2")}
    assert by_cell[("clean", "grayscale")] == {"countermeasure.version": ("1", "5")}
    assert set(by_cell[("ops", "grayscale")]) == {"method.version", "countermeasure.version"}
    text = render(found, 4)
    assert text.startswith("3 of 4 finished rows are superseded") and "method.version: 1 → 2  (2 rows" in text
    assert main(["stale", str(out), "--data-root", data_root]) == 1
