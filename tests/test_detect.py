"""`detect` (benchmark/tools/detect.py): simple detectors on raw pixels tell an obvious protection from clean data,
tell nothing from clean data itself, and a resumed call computes nothing twice."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch

from benchmark.tools.detect import DETECTION_FILE, Recipe, auroc, detect, detection_split


def test_auroc_ranks_positives_above_negatives_with_ties_half():
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert auroc(torch.tensor([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert auroc(torch.tensor([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert auroc(torch.zeros(4), labels) == 0.5
    with pytest.raises(ValueError, match="positives and negatives"):
        auroc(torch.zeros(2), torch.ones(2))


def test_each_image_is_shown_once_either_clean_or_protected():
    clean = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 3, 2, 2).contiguous()
    protected = clean + 100
    train_x, train_y, test_x, test_y = detection_split(clean, protected, seed=0)
    images = torch.cat([train_x, test_x])[:, 0, 0, 0].long()
    labels = torch.cat([train_y, test_y])
    assert len(test_x) == 20 and sorted((images % 100).tolist()) == list(range(100))  # every image, once
    assert torch.equal(labels, (images >= 100).float()) and labels.sum() == 50


def test_a_blurred_set_is_detected_clean_data_is_not_and_a_rerun_computes_nothing(tmp_path, smoke_config):
    recipe = Recipe(epochs=5)
    rows = detect(smoke_config, ["cuda", "clean"], [0], tmp_path, recipe)
    by = {(r["method"], r["detector"]): r for r in rows}
    assert set(by) == {(m, d) for m in ("cuda", "clean") for d in ("linear", "mlp")}
    assert by[("cuda", "linear")]["auroc"] > 0.9 and by[("cuda", "mlp")]["auroc"] > 0.9  # measured: 0.97
    assert all(abs(by[("clean", d)]["auroc"] - 0.5) < 0.15 for d in ("linear", "mlp"))
    assert by[("cuda", "linear")]["test_size"] == 200 and len({r["detection_id"] for r in rows}) == 4
    assert detect(smoke_config, ["cuda", "clean"], [0], tmp_path, recipe) == []  # resumed: all there
    written = [json.loads(line) for line in (tmp_path / DETECTION_FILE).read_text().splitlines()]
    assert [r["detection_id"] for r in written] == [r["detection_id"] for r in rows]
    assert detect(smoke_config, ["cuda"], [0], tmp_path, Recipe(epochs=6)) != []  # another recipe: new rows


def test_a_bad_method_fails_before_any_work(tmp_path, smoke_config):
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        detect(smoke_config, ["cuda", "nope"], [0], tmp_path)
    assert not (tmp_path / DETECTION_FILE).exists()


def _detection(method: str, seed: int, detector: str, value: float, preset: str = "smoke") -> dict:
    return {"detection_id": f"{method}/{seed}/{detector}/{preset}", "dataset": "cifar10", "preset": preset,
            "method": method, "method_label": method, "seed": seed, "detector": detector, "accuracy": value,
            "auroc": value}


def test_the_board_shows_each_method_s_best_detector_beside_its_psnr(tmp_path):
    from benchmark.report.site import write_site
    from benchmark.report.tables import write_leaderboard
    from tests.test_leaderboard import _row, _write

    run = _write(tmp_path / "run", [_row(m, "none", s, 0.3) for m in ("clean", "ops", "em") for s in (0, 1)])
    rows = [_detection("ops", 0, "linear", 0.61), _detection("ops", 0, "mlp", 0.71), _detection("ops", 1, "mlp", 0.81),
            _detection("clean", 0, "mlp", 0.5), _detection("ops", 0, "mlp", 0.99, preset="quick")]  # another board's
    (run / DETECTION_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    write_leaderboard([run], tmp_path / "out", with_rows=True)
    table = pd.read_csv(tmp_path / "out" / "leaderboard.csv", index_col="method")
    published = [json.loads(line) for line in (tmp_path / "out" / DETECTION_FILE).read_text().splitlines()]
    assert [r["detection_id"] for r in published] == [r["detection_id"] for r in rows[:4]]  # the board's, not quick's
    published_rows = sorted((tmp_path / "out").glob("leaderboard.seed*.jsonl"))
    write_leaderboard(published_rows, tmp_path / "again")
    assert pd.read_csv(tmp_path / "again" / "leaderboard.csv", index_col="method").loc["ops", "detect_auroc"] == \
        pytest.approx(0.76), "the published rows render back with their detection column"
    write_leaderboard([*published_rows, run], tmp_path / "both", with_rows=True)
    republished = [json.loads(line)["detection_id"] for line in (tmp_path / "both" / DETECTION_FILE).open()]
    assert republished == [r["detection_id"] for r in rows[:4]], "rows both the board and its run hold: published once"
    assert table.loc["ops", "detect_auroc"] == pytest.approx(0.76)  # (max(0.61, 0.71) + 0.81) / 2, quick's left out
    assert table.loc["clean", "detect_auroc"] == 0.5 and pd.isna(table.loc["em", "detect_auroc"])
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "detect AUROC" in markdown and re.search(r"\| +0\.76 \|", markdown)
    write_site([run], tmp_path / "site")
    page = (tmp_path / "site" / "board.html").read_text()
    assert 'class="measure">detect AUROC</th>' in page and 'data-value="0.7600">0.76</td>' in page


def test_a_board_without_detection_rows_has_no_detection_column(tmp_path):
    from benchmark.report.tables import write_leaderboard
    from tests.test_leaderboard import _row, _write

    run = _write(tmp_path / "run", [_row(m, "none", 0, 0.3) for m in ("clean", "ops")])
    write_leaderboard([run], tmp_path / "out")
    assert "detect" not in (tmp_path / "out" / "leaderboard.csv").read_text()
