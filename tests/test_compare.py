"""`benchmark compare`: our cells beside the shipped reference numbers, and the protocol's facts."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.report.compare import (
    _pair,
    compare,
    read_reference,
    recovery,
    reference_table,
    render_markdown,
)

REFERENCE = Path(__file__).resolve().parents[1] / "references" / "cifar10-resnet18.csv"
BUDGETS = {"clean": "unbounded", "em": "L∞ ≤ 8/255", "tap": "L∞ ≤ 8/255", "lsp": "L2 ≤ 1.304", "ops": "L0 ≤ 1 pixel",
           "rem": "L∞ ≤ 8/255", "ar": "L2 ≤ 1", "hypo": "L∞ ≤ 8/255", "cuda": "unbounded"}


def _rows(table: pd.DataFrame) -> list[dict]:
    """Result rows (one seed) holding the accuracies of a method × countermeasure table."""
    return [{"cell_id": f"{m}/{d}/0", "status": "ok", "dataset": "cifar10", "preset": "quick", "model": "fastcnn",
             "method": m, "countermeasure": d, "seed": 0, "final_acc": table.at[m, d] / 100, "budget": BUDGETS[m]}
            for m in table.index if m in BUDGETS for d in table.columns if pd.notna(table.at[m, d])]


CELLS = read_reference(REFERENCE)


def test_the_reference_numbers_reproduce_every_fact_they_speak_about():
    reference = reference_table(CELLS)
    result = compare(_rows(reference), CELLS)
    assert set(result.facts["method"]) == {"em", "tap", "lsp", "ops", "rem", "ar", "em vs rem"}
    assert result.checked == len(result.facts) == 16  # grayscale 4, JPEG-10 5 (L∞/L2), AT 5 + OPS, EM vs REM
    assert result.reproduced == result.checked
    assert result.cells.at["em", "grayscale"] == "92.0 (92.0)"


def test_a_miss_a_missing_cell_and_a_method_too_weak_to_judge():
    ours = reference_table(CELLS)
    ours.at["em", "grayscale"] = 25.0
    ours.at["tap", "adv_train"] = float("nan")
    ours.at["lsp", "none"] = 80.0  # 5.4 points under clean/JPEG-10: too weak for a JPEG-10 verdict
    facts = compare(_rows(ours), CELLS).facts.set_index(["fact", "method"])["verdict"]
    assert facts["grayscale restores EM and LSP", "em"] == "MISS"
    assert facts["JPEG-10 restores every L∞/L2 method", "lsp"] == "too little protection to judge"
    assert facts["adversarial training restores all but OPS", "tap"] == "not run"


def test_the_extra_reference_reproduces_its_hypo_facts_and_coin_is_judged_on_our_cells_alone():
    extra = read_reference(REFERENCE.with_name("cifar10-resnet18-extra.csv"))
    facts = compare(_rows(reference_table(extra)), extra).facts.set_index(["fact", "method"])["verdict"]
    assert facts["grayscale does not restore HYPO", "hypo"] == "reproduced"
    assert facts["JPEG-10 restores every L∞/L2 method", "hypo"] == "reproduced"
    ours = pd.DataFrame({"none": [60.0, 20.0], "coin": [55.0, 40.0]}, index=["clean", "cuda"])
    for cuda_under_coin, verdict in ((40.0, "reproduced"), (30.0, "MISS")):  # shares 20/35 and 10/35
        ours.at["cuda", "coin"] = cuda_under_coin
        facts = compare(_rows(ours), extra).facts.set_index(["fact", "method"])["verdict"]
        assert facts["COIN restores CUDA", "cuda"] == verdict


def test_recovery_uses_clean_under_the_countermeasure_else_clean_none():
    table = pd.DataFrame({"none": [90.0, 10.0], "grayscale": [70.0, 40.0], "adv_train": [None, 50.0]},
                         index=["clean", "em"])
    assert recovery(table, "em", "grayscale") == pytest.approx(30 / 60)
    assert recovery(table, "em", "adv_train") == pytest.approx(40 / 80)


def test_cli_prints_and_writes_the_comparison(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(reference_table(CELLS))))
    assert main(["compare", str(run), "--reference", str(REFERENCE), "--out", str(tmp_path / "cmp.md")]) == 0
    text = capsys.readouterr().out
    assert "16 of 16 reproduced" in text and (tmp_path / "cmp.md").read_text() + "\n" == text
    assert main(["compare", str(run), "--reference", str(tmp_path / "nope.csv")]) == 2
    assert "no reference file" in capsys.readouterr().err


def test_a_share_just_under_the_threshold_never_reads_as_reaching_it():
    table = pd.DataFrame({"none": [60.0, 20.0], "grayscale": [60.0, 39.98]}, index=["clean", "em"])
    share = recovery(table, "em", "grayscale")
    assert share < 0.5
    assert "20.0 → 40.0 (0.499)" in _pair(table, "em", "grayscale", share)
    assert _pair(table, "em", "grayscale", 0.8765).endswith("(0.88)")


def test_facts_use_seed_means_and_seeds_on_both_sides_are_uncertain():
    # grayscale vs EM: clean 60 everywhere, EM 20 under none; seed 0 wins back 0.30, seed 1 0.70
    base = {("clean", "none"): (60.0, 60.0), ("clean", "grayscale"): (60.0, 60.0), ("em", "none"): (20.0, 20.0),
            ("em", "grayscale"): (32.0, 48.0), ("tap", "none"): (20.0, 20.0), ("tap", "grayscale"): (22.0, 24.0)}
    budgets = {"clean": "unbounded", "em": "L∞ ≤ 8/255", "tap": "L∞ ≤ 8/255"}
    rows = [{"cell_id": f"{m}/{d}/{s}", "status": "ok", "dataset": "cifar10", "preset": "quick", "model": "fastcnn",
             "method": m, "countermeasure": d, "seed": s, "final_acc": accs[s] / 100, "budget": budgets[m]}
            for (m, d), accs in base.items() for s in (0, 1)]
    result = compare(rows, CELLS)
    facts = result.facts.set_index(["fact", "method"])
    em = facts.loc[("grayscale restores EM and LSP", "em")]
    assert em["verdict"] == "uncertain: the seeds straddle the threshold"
    assert em["ours"] == "20.0 → 40.0 (0.50); seeds 0.30–0.70"  # the seed mean is exactly at the threshold
    tap = facts.loc[("grayscale does not restore TAP or OPS", "tap")]
    assert tap["verdict"] == "reproduced" and tap["ours"].endswith("seeds 0.05–0.10")
    assert (result.uncertain, result.checked) == (1, 1)
    assert "1 of 1 reproduced, 1 uncertain" in render_markdown(result, "ref.csv")


def test_rem_resisting_adversarial_training_less_than_em_is_a_miss_and_split_seeds_are_uncertain():
    accs = {("clean", "none"): (60.0, 60.0), ("em", "none"): (20.0, 20.0), ("rem", "none"): (20.0, 20.0),
            ("em", "adv_train"): (40.0, 40.0), ("rem", "adv_train"): (50.0, 30.0)}
    rows = [{"cell_id": f"{m}/{d}/{s}", "status": "ok", "dataset": "cifar10", "preset": "quick", "model": "fastcnn",
             "method": m, "countermeasure": d, "seed": s, "final_acc": a[s] / 100, "budget": BUDGETS[m]}
            for (m, d), a in accs.items() for s in (0, 1)]
    verdict = compare(rows, CELLS).facts.set_index("method").loc["em vs rem"]
    assert verdict["verdict"] == "uncertain: the seeds disagree on the order"  # seed 0: REM 0.75 > EM 0.5
    one_seed = [r for r in rows if r["seed"] == 0]
    verdict = compare(one_seed, CELLS).facts.set_index("method").loc["em vs rem"]
    assert (verdict["verdict"], verdict["ours"], verdict["reference"]) == ("MISS", "em 0.50, rem 0.75", "em 0.83, rem 0.78")
