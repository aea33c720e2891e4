"""`slice iss` (benchmark/tools/gpu_slice.py), dry-run on the CPU with small data: both grids run as ordinary run
folders, the comparison and the summary are written, and a second call (a device run cut short, then repeated)
computes nothing twice."""
from __future__ import annotations

import json
from pathlib import Path

from benchmark.store.rows import read_rows
from benchmark.tools.gpu_slice import SUMMARY, iss_slice

REFERENCE = Path(__file__).resolve().parents[1] / "references" / "cifar10-resnet18.csv"


def test_the_slice_runs_both_grids_compares_and_resumes(tmp_path, data_root):
    kwargs = dict(fast_preset="smoke", reference_preset="smoke[epochs=2]", methods=("ops", "lsp"),
                  columns=("none", "grayscale"), reference_methods=("ops",), data_root=data_root,
                  cache_dir=str(tmp_path / "cache"), device="cpu")
    result = iss_slice(tmp_path / "out", REFERENCE, **kwargs)
    assert result["fast"]["cells"] == 6 and result["reference"]["cells"] == 2  # clean is added to each
    assert result["fast"]["failed"] == 0 and result["fast"]["cells_per_minute"] > 0
    fast = read_rows([tmp_path / "out" / "fast"])
    assert {(r["method"], r["countermeasure"]) for r in fast} == {(m, c) for m in ("clean", "ops", "lsp")
                                                                   for c in ("none", "grayscale")}
    assert {r["preset"] for r in read_rows([tmp_path / "out" / "reference"])} == {"smoke[epochs=2]"}
    compared = (tmp_path / "out" / "compare.md").read_text()
    assert "## Agreement with the reference" in compared and "| ops " in compared and "(14.7)" in compared
    assert json.loads((tmp_path / "out" / SUMMARY).read_text()) == result
    again = iss_slice(tmp_path / "out", REFERENCE, **kwargs)
    assert again["fast"]["cells"] == 0 and again["fast"]["skipped"] == 6 and again["reference"]["skipped"] == 2
