"""The frontier: a calibrated strength ladder lands near its target PSNRs, runs as ordinary resumable cells, and
its table and reading at matched PSNR come from the rows."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.budget import Budget
from benchmark.cli import main
from benchmark.engine import recipe
from benchmark.plugins import Method, Strength
from benchmark.registry import methods
from benchmark.report.frontier import READ_AT, frontier_table, per_column, read_at, write_frontier
from benchmark.report.site import write_site
from benchmark.tools import frontier
from benchmark.tools.frontier import run_frontier


def test_a_calibrated_ladder_lands_near_its_targets_and_resumes_without_work(smoke_config, tmp_path, monkeypatch):
    out = tmp_path / "frontier"
    paths = run_frontier(smoke_config, ["lsp"], ["none", "grayscale"], [0], out, targets=[36.0, 26.0],
                         pilot_images=64, show_progress=False)
    assert [p.name for p in paths] == ["frontier.csv", "frontier.md", "frontier.png"]
    ladder = json.loads((out / "frontier.json").read_text())["methods"]["lsp"]
    assert ladder["param"] == "eps" and ladder["pilot_images"] == 64
    assert [s["target"] for s in ladder["ladder"]] == [36.0, 26.0] and not any("dropped" in s for s in ladder["ladder"])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)  # clean and lsp at 3 strengths × 2 columns
    measured = {r["method_label"]: r["perturbation"]["psnr"] for r in rows if r["method"] == "lsp"}
    values = {s["value"]: s["target"] for s in ladder["ladder"]}
    for label, psnr in measured.items():
        if label != "lsp":  # a ladder step: the full set's PSNR lands within a dB of the pilot's target
            value = float(label.split("eps=")[1].rstrip("]"))
            assert psnr == pytest.approx(values[value], abs=1.0), label
    table = pd.read_csv(out / "frontier.csv")
    lsp = table[table["method"] == "lsp"]
    assert list(lsp["value"]) == sorted(lsp["value"]) and list(lsp["psnr"]) == sorted(lsp["psnr"], reverse=True)
    assert (lsp["worst"] >= lsp["none"]).all() and (lsp["seeds"] == 1).all()
    assert "| lsp |" in (out / "frontier.md").read_text()
    site = tmp_path / "site"
    written = write_site([out], site)
    page = (site / "frontier.html").read_text()
    assert site / "frontier.png" in written and (site / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert 'href="frontier.html"' in (site / "index.html").read_text()
    # the worst-case reading, one per matched PSNR with each countermeasure, and lsp at three strengths
    assert page.count("<tr><th scope=\"row\" data-text=\"lsp") == 1 + len(READ_AT) + 3
    assert "<table id=\"each-28\"" in page and ">grayscale</th>" in page
    board = (site / "board.html").read_text()
    assert "PSNR (dB)" in board and "≥ 30 dB" in board

    calls = []
    monkeypatch.setattr(recipe, "train_victim", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(frontier, "calibrate", lambda *a, **k: pytest.fail("the saved ladder should be reused"))
    run_frontier(smoke_config, ["lsp"], ["none", "grayscale"], [0], out, targets=[36.0, 26.0], pilot_images=64,
                 show_progress=False)
    assert calls == [] and len((out / "results.jsonl").read_text().splitlines()) == 8


def test_steps_that_would_repeat_a_point_are_dropped(smoke_config):
    """OPS at one pixel is the weakest it can be: a target above its PSNR clips to the same value. A target within a
    dB of the given strength's PSNR would repeat that point."""
    quiet = lambda it=None, **kw: it  # noqa: E731
    ops = frontier.calibrate(smoke_config, "ops", [45.0, 28.0], 64, quiet)["ladder"]
    assert "already on the ladder" in ops[0]["dropped"] and "dropped" not in ops[1] and ops[1]["value"] >= 3
    lsp = frontier.calibrate(smoke_config, "lsp", [28.0, 27.5], 64, quiet)
    assert "dropped" not in lsp["ladder"][0] and "within 1 dB" in lsp["ladder"][1]["dropped"]


@dataclass
class Saturating(Method):
    """Adds ±16·scale/255 in a fixed sign pattern, clipped to its 8/255 bound: below scale 0.5 the amplitude law
    holds, above it the bound flattens the knob (as `dh-8`'s hidden residual)."""

    scale: float = 1.0
    budget = Budget("linf", 8 / 255)
    strength = Strength("scale", "amplitude", 0.01, 8.0)

    def generate(self, images, labels, ctx):
        sign = torch.ones_like(images, dtype=torch.int16)
        sign[..., ::2] = -1
        step = min(round(16 * self.scale), 8)
        return (images.to(torch.int16) + step * sign).clamp(0, 255).to(torch.uint8)


def test_a_step_the_budget_clips_is_measured_and_predicted_again(smoke_config, temp_plugin):
    """Predicted from the given strength alone (clipped at 8/255, 30 dB), 36 dB would need scale 0.5, which the bound
    still clips to 30 dB; measuring that step and predicting again from it reaches 36 dB."""
    temp_plugin(methods, "saturating", Saturating)
    quiet = lambda it=None, **kw: it  # noqa: E731
    blind = frontier.calibrate(smoke_config, "saturating", [36.0], 64, quiet, rounds=0)
    assert blind["pilot_psnr"] == pytest.approx(30.1, abs=0.3) and "measured_psnr" not in blind["ladder"][0]
    assert blind["ladder"][0]["value"] == pytest.approx(0.5, abs=0.01)  # predicted 36 dB; it would give 30
    step = frontier.calibrate(smoke_config, "saturating", [36.0], 64, quiet, rounds=2)["ladder"][0]
    assert step["measured_psnr"] == pytest.approx(36.0, abs=0.75) and step["value"] < 0.3 and "dropped" not in step
    assert step["measured"][0][1] == pytest.approx(30.1, abs=0.3)  # the first try, clipped, is on record
    once = frontier.calibrate(smoke_config, "saturating", [36.0], 64, quiet, rounds=1)["ladder"][0]
    assert "within 1 dB of another point" in once["dropped"]  # one measurement finds the clipped step and drops it
    faint = frontier.calibrate(smoke_config, "saturating", [70.0], 64, quiet, rounds=1)["ladder"][0]
    assert faint["value"] < 0.03 and "changed none of the pilot images" in faint["dropped"]  # 16 × 0.0102 rounds to 0


def test_the_next_try_follows_the_last_two_points_where_they_slope_the_knobs_way():
    eps = Strength("eps", "amplitude", 0.5, 64.0)
    # 3 dB per halving (half the law's 6): from 30 dB at 8 and 27 dB at 16, 36 dB lies two halvings below 8
    assert frontier.next_value(eps, (8.0, 30.0), (16.0, 27.0), 36.0) == pytest.approx(2.0)
    assert frontier.next_value(eps, (8.0, 30.0), (4.0, 30.0), 36.0) == eps.value_for(4.0, 30.0, 36.0)  # flat: the law
    assert frontier.next_value(eps, (8.0, 30.0), (4.0, 29.0), 36.0) == eps.value_for(4.0, 29.0, 36.0)  # backwards
    assert frontier.next_value(eps, (8.0, 30.0), (7.0, 30.2), 60.0) == 0.5  # far beyond the range: its low end
    target = Strength("psnr", "psnr", 5.0, 80.0)
    assert frontier.next_value(target, (30.0, 28.0), (34.0, 30.0), 32.0) == pytest.approx(38.0)


def _row(method: str, label: str, cm: str, seed: int, acc: float, psnr: float, **params) -> dict:
    return {"status": "ok", "method": method, "method_label": label, "countermeasure_label": cm, "seed": seed,
            "final_acc": acc, "method_params": params, "perturbation": {"psnr": psnr, "ssim": 0.9}}


def test_the_table_counts_a_seed_only_with_every_countermeasure_and_reads_between_points():
    rows = [_row("lsp", "lsp", cm, s, acc, 33.0) for s in (0, 1) for cm, acc in (("none", 0.2), ("jpeg10", 0.5 + s / 10))]
    rows += [_row("lsp", "lsp[eps=12]", "none", 0, 0.1, 27.0, eps=12.0), _row("lsp", "lsp[eps=12]", "jpeg10", 0, 0.3, 27.0, eps=12.0),
             _row("lsp", "lsp[eps=12]", "none", 1, 0.1, 27.0, eps=12.0)]  # seed 1 lacks jpeg10
    table = frontier_table(rows)
    default, strong = table[table["label"] == "lsp"].iloc[0], table[table["label"] == "lsp[eps=12]"].iloc[0]
    assert default["value"] == 6.0 and strong["value"] == 12.0
    assert default["worst"] == pytest.approx(55.0) and (default["worst_min"], default["worst_max"]) == (50.0, 60.0)
    assert strong["seeds"] == 1 and strong["worst"] == pytest.approx(30.0) and strong["none"] == pytest.approx(10.0)
    assert read_at(table, "lsp", 30.0) == pytest.approx(42.5)  # halfway between 30 % at 27 dB and 55 % at 33 dB
    assert np.isnan(read_at(table, "lsp", 35.0))  # outside the ladder: not extrapolated
    # each countermeasure over the seeds that ran it: jpeg10 of the default is 50 and 60 %, of eps=12 only seed 0's
    assert per_column(table) == ["none", "jpeg10"]
    assert default["acc_jpeg10"] == pytest.approx(55.0) and strong["acc_jpeg10"] == pytest.approx(30.0)
    assert strong["acc_none"] == pytest.approx(10.0)
    assert read_at(table, "lsp", 30.0, "acc_none") == pytest.approx(15.0)
    # worst over a chosen set of columns: under `none` alone both seeds of eps=12 count
    only_none = frontier_table(rows, over=["none"])
    strong = only_none[only_none["label"] == "lsp[eps=12]"].iloc[0]
    assert strong["seeds"] == 2 and strong["worst"] == pytest.approx(10.0) and strong["countermeasures"] == 1
    # ... while the worst of every column still counts only seed 0, the one that has them all
    assert strong["seeds_all"] == 1 and strong["worst_all"] == pytest.approx(30.0)
    assert only_none[only_none["label"] == "lsp"].iloc[0]["worst_all"] == pytest.approx(55.0)


def test_the_page_gives_the_worst_of_every_column_when_worst_is_over_fewer(tmp_path):
    rows = [_row("lsp", "lsp", cm, s, acc, 33.0) for s in (0, 1) for cm, acc in (("none", 0.2), ("adv_train", 0.5))]
    rows += [_row("lsp", "lsp[eps=12]", "none", s, 0.1, 27.0, eps=12.0) for s in (0, 1)]
    rows += [_row("lsp", "lsp[eps=12]", "adv_train", 0, 0.4, 27.0, eps=12.0)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps({"cell_id": f"c{i}", "dataset": "cifar10", "preset": "smoke",
                                                                 "model": "fastcnn"} | r) + "\n" for i, r in enumerate(rows)))
    write_frontier([tmp_path], tmp_path, over=["none"])
    page = (tmp_path / "frontier.md").read_text()
    every = page.split("## Worst of all 2 countermeasures")[1]
    assert "| `lsp` | 33.0 | 50.0 [50.0–50.0] | 2 |" in every and "| `lsp[eps=12]` | 27.0 | 40.0 [40.0–40.0] | 1 |" in every
    assert "| lsp |    48.3 |    41.7 |       – |" in every  # between 40 % at 27 dB and 50 % at 33 dB; not beyond
    width = int.from_bytes((tmp_path / "frontier.png").read_bytes()[16:20], "big")  # the PNG header's width
    write_frontier([tmp_path], tmp_path)  # worst already over every column: no second table, no third panel
    assert "## Worst of all" not in (tmp_path / "frontier.md").read_text()
    assert int.from_bytes((tmp_path / "frontier.png").read_bytes()[16:20], "big") == pytest.approx(width * 2 / 3, rel=0.05)


def test_bad_frontier_requests_fail_before_any_work(tmp_path, capsys, data_root):
    out = tmp_path / "f"
    assert main(["frontier", "--methods", "clean", "--out", str(out), "--data-root", data_root]) == 2
    assert "no strength knob" in capsys.readouterr().err
    assert main(["frontier", "--methods", "lsp", "--method-args", "lsp.eps=3", "--out", str(out),
                 "--data-root", data_root]) == 2
    assert "the knob the frontier's ladder sets" in capsys.readouterr().err
    assert main(["frontier", "--methods", "lsp", "--targets", "36,2", "--out", str(out), "--data-root", data_root]) == 2
    assert "--targets must be PSNRs in [5, 80] dB" in capsys.readouterr().err
    assert main(["frontier", "--methods", "lsp", "--calibration-rounds", "-1", "--out", str(out),
                 "--data-root", data_root]) == 2
    assert "--calibration-rounds must be 0 or more, got -1" in capsys.readouterr().err
    assert not (out / "results.jsonl").exists()
