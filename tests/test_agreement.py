"""The agreement figures of `compare` on synthetic rows whose answer is known."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.identity import (
    canonical,
    digest,
    effective_settings,
    plugin_label,
    preset_identity,
)
from benchmark.plugins import build
from benchmark.presets import get_preset
from benchmark.registry import countermeasures
from benchmark.report.agreement import RESTORED, agreement, spearman
from benchmark.report.compare import compare, read_reference
from benchmark.report.leaderboard import build_leaderboards

REFERENCE = Path(__file__).resolve().parents[1] / "references" / "cifar10-resnet18.csv"
CELLS = read_reference(REFERENCE)
REF = {(c.method, c.countermeasure): c for c in CELLS}


def _row(method: str, cm: str, acc: float, preset: str, seed: int = 0, params: dict | None = None,
         peak: float | None = None, model: str = "resnet18") -> dict:
    """A schema-2 ok row whose identity carries the countermeasure's effective settings at `preset`."""
    p = get_preset(preset)
    plugin = build(countermeasures.get(cm), params or {})
    settings = json.loads(canonical(effective_settings(plugin, p)))
    identity = {"preset": preset_identity(p), "countermeasure": {"name": cm, "settings": settings}}
    cm_id = digest(identity["countermeasure"])
    return {
        "cell_id": f"{method}/{cm_id}/{seed}", "status": "ok", "dataset": "cifar10", "preset": preset,
        "preset_id": digest(identity["preset"]), "model": model, "seed": seed, "method": method,
        "train_size": p.train_per_class * 10 if p.train_per_class else 50_000, "seconds": {"train": 10.0},
        "method_id": digest(method), "method_label": method, "countermeasure": cm, "countermeasure_id": cm_id,
        "countermeasure_label": plugin_label(plugin), "identity": identity, "final_acc": acc / 100,
        "peak_acc": (acc if peak is None else peak) / 100, "schema": 2,
    }


def _reference_rows(preset: str, change: dict | None = None, seed: int = 0) -> list[dict]:
    """The reference's own numbers as our rows at `preset`, every column at the reference's settings; the clean
    row under each column is the reference's clean(c), else its clean/none."""
    change = change or {}
    rows, columns = [], {}
    for cell in CELLS:
        acc = change.get((cell.method, cell.countermeasure), cell.acc)
        rows.append(_row(cell.method, cell.countermeasure, acc, preset, seed, cell.params))
        columns[(cell.countermeasure, tuple(sorted(cell.params.items())))] = cell.params
    for (cm, _), params in columns.items():
        clean = REF.get(("clean", cm)) or REF[("clean", "none")]
        if cm not in ("none", "grayscale", "jpeg10"):
            rows.append(_row("clean", cm, change.get(("clean", cm), clean.acc), preset, seed, params))
    return rows


def _board(rows: list[dict]):
    (board,) = build_leaderboards(rows)
    return board


def test_the_reference_against_itself_agrees_everywhere():
    a = agreement(_board(_reference_rows("paper")), CELLS, resamples=0)
    assert a.excluded == []
    assert a.figures.agree == a.figures.judged > 40
    assert a.figures.spearman == pytest.approx(1.0)
    assert a.figures.efficacy_gap == pytest.approx(0.0) and a.seeds == 1
    assert a.met() == {"verdicts": True, "spearman": True, "efficacy_gap": True, "seeds": False}


def test_a_flipped_verdict_and_an_efficacy_gap_are_counted():
    # EM under grayscale: share 0.99 in the reference; 25 % gives (25 − 20.8) / (92.4 − 20.8) = 0.06: not restored
    a = agreement(_board(_reference_rows("paper", {("em", "grayscale"): 25.0})), CELLS, resamples=0)
    (flipped,) = [c for c in a.cells if c.agrees is False]
    assert (flipped.method, flipped.countermeasure) == ("em", "grayscale")
    assert flipped.share == pytest.approx((25.0 - 20.8) / (92.4 - 20.8)) and flipped.share < RESTORED
    assert a.figures.agree == a.figures.judged - 1 and a.figures.efficacy_gap == pytest.approx(0.0)
    a = agreement(_board(_reference_rows("paper", {("lsp", "none"): 80.0})), CELLS, resamples=0)
    assert a.figures.gap_method == "lsp"
    assert a.figures.efficacy_gap == pytest.approx((80.0 - 13.1) / 94.7)


def test_a_column_at_other_settings_is_excluded_with_the_variant_to_run():
    a = agreement(_board(_reference_rows("paper") + [_row("em", "gaussian_blur", 30.0, "paper")]), CELLS, 0)
    assert a.excluded == []  # the σ 1.0 column sits beside the σ 0.1 one; only the latter is compared
    quick = [r for r in _reference_rows("quick") if not (r["countermeasure"] == "gaussian_blur")]
    quick += [_row(m, "gaussian_blur", 50.0, "quick") for m in ("clean", "em")]
    excluded = {(c.method, c.countermeasure): c.excluded for c in agreement(_board(quick), CELLS, 0).excluded}
    assert "sigma 1.0 (reference 0.1)" in excluded[("em", "gaussian_blur")]
    assert "--countermeasure-args gaussian_blur.sigma=0.1" in excluded[("em", "gaussian_blur")]
    assert "sigma 1.0 (reference 0.1)" in excluded[("tap", "gaussian_blur")]  # the column exists, for em and clean
    # at quick the default ueraser is not UEraser-max; these rows ran the UEraser-max variant, so it is compared
    assert ("em", "ueraser") not in excluded and ("tap", "ueraser") not in excluded


def test_the_bootstrap_interval_spans_the_seeds_and_collapses_when_they_agree():
    same = _reference_rows("paper", seed=0) + _reference_rows("paper", seed=1)
    a = agreement(_board(same), CELLS, resamples=200)
    assert a.intervals["spearman"] == pytest.approx((1.0, 1.0)) and a.seeds == 2
    # seed 1 alone flips EM under grayscale: resamples of seed 1 twice disagree there, of seed 0 twice do not
    split = _reference_rows("paper", seed=0) + _reference_rows("paper", {("em", "grayscale"): 21.0}, seed=1)
    a = agreement(_board(split), CELLS, resamples=200)
    low, high = a.intervals["verdicts"]
    judged = a.figures.judged
    assert low == pytest.approx((judged - 1) / judged) and high == pytest.approx(1.0)


def test_spearman_matches_a_hand_computation():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x 1 2 3 4, y 1 3 2 4: 1 − 6·Σd² / (n(n² − 1)) = 1 − 6·2 / 60
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 2], [1, 2])) and math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_peak_accuracy_is_a_separate_view_of_the_same_rows():
    rows = _reference_rows("paper")
    for r in rows:
        if (r["method"], r["countermeasure"]) == ("lsp", "none"):
            r["peak_acc"] = 0.80
    final, peak = compare(rows, CELLS, resamples=0), compare(rows, CELLS, "peak_acc", resamples=0)
    assert final.agreement.figures.efficacy_gap == pytest.approx(0.0)
    assert peak.agreement.figures.efficacy_gap == pytest.approx((80.0 - 13.1) / 94.7)
    with pytest.raises(ValueError, match="valid metrics: final_acc, peak_acc"):
        compare(rows, CELLS, "best")


def test_reference_params_are_read_and_a_bad_item_is_named(tmp_path):
    assert REF[("tap", "ueraser")].params == {"repeat_fraction": "1", "plasma_prob": "0.8", "jpeg": "true"}
    assert REF[("em", "none")].params == {}
    bad = tmp_path / "ref.csv"
    bad.write_text("method,countermeasure,acc,params,source\nem,gaussian_blur,14.7,sigma,x\n")
    with pytest.raises(ValueError, match="line 2: params item 'sigma' is not name=value"):
        read_reference(bad)


def test_cli_writes_the_figures_as_json(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _reference_rows("paper")))
    assert main(["compare", str(run), "--reference", str(REFERENCE), "--resamples", "10",
                 "--json", str(tmp_path / "a.json")]) == 0
    assert "## Agreement with the reference" in capsys.readouterr().out
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["verdicts"]["agree"] == data["verdicts"]["judged"] and data["spearman"]["value"] == 1.0
    assert data["met"]["verdicts"] is True and data["seeds"] == 1


def test_the_lever_table_puts_boards_side_by_side_with_their_cost(tmp_path):
    from benchmark.report.calibration import lever_markdown, lever_plot, lever_table

    runs = []
    for name, preset, change in (("base", "quick", {("lsp", "none"): 80.0}), ("longer", "quick[epochs=20]", {})):
        rows = [r | {"model": "tinycnn"} for r in _reference_rows(preset, change)]
        runs.append(tmp_path / f"{name}.jsonl")
        runs[-1].write_text("".join(json.dumps(r) + "\n" for r in rows if r["countermeasure"] == "none"))
    half = len(runs[1].read_text().splitlines()) // 2
    lines = runs[1].read_text().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(lines[:half]))
    (tmp_path / "b.jsonl").write_text("".join(lines[half:]))
    joined = f"longer={tmp_path / 'a.jsonl'},{tmp_path / 'b.jsonl'}"  # one board's rows from two files
    table = lever_table([runs[0], joined], CELLS, resamples=0, base_hours=3.4)
    assert list(table["run"]) == ["base.jsonl", "longer"] and list(table["cost"]) == [1.0, 2.0]
    assert list(table["cpu_hours"]) == pytest.approx([3.4, 6.8])
    assert table["efficacy_gap"].tolist() == pytest.approx([(80.0 - 13.1) / 94.7, 0.0])
    assert table.loc[0, "gap_method"] == "lsp" and table["judged"].tolist() == [0, 0]  # `none` only: no verdicts
    assert table["clean"].tolist() == pytest.approx([94.7, 94.7])
    lever_plot(table, tmp_path / "levers.png")
    assert (tmp_path / "levers.png").stat().st_size > 10_000
    assert "quick[epochs=20]" in lever_markdown(table)
